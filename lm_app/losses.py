"""The softmax cross-entropy of every predicted token, with the rank of its label, in one pass.

At the recipe's size the logits (700 tokens x 3,617 words a step) are the
largest tensor of training, and everything done to them costs: the loss, its
gradient ``softmax - one_hot``, and the top-1/top-5 counts the progress bar
shows.  One XLA-fused pass computes all three (a label's rank is how many
words score higher: top-k holds it when the rank is below k, ties counting as
``tf.math.in_top_k`` counts them).

On a CPU the pass is lm_app's native kernel (:mod:`lm_app.native`): one
row at a time, three sweeps that find it in cache, on every core; it took the
recipe's loss (700 x 3,617 logits, its gradient and ranks) from 2.87 to 0.77 ms
here, measured in one graph.

With the softmax layer's own weights (:func:`projected_token_losses`) the
backward pass also never touches the ``[tokens, vocab]`` gradient again: the
per-token upstream weights ``u`` (1/N for a mean) scale the rows of the two
small matrices around it, ``dx = (G W^T) u`` and ``dW = (x u)^T G``, instead of
``G`` itself.
"""
import math

import tensorflow as tf

from . import native


def _scores(product, labels, gradient, bias=None):
    """``(losses, ranks[, d_logits])`` of flat logits ``product + bias``: the native kernel on a CPU, else XLA.

    The kernel adds the bias itself as it reads each row, so the product
    before it stays a plain matmul (see ``kernels.cc``).
    """
    kernels = native.ops()
    if kernels is None:
        return _xla_scores(product if bias is None else product + bias, labels, gradient)
    bias = tf.zeros([0], product.dtype) if bias is None else tf.stop_gradient(bias)
    values, rank, d_logits = kernels.lm_app_softmax_cross_entropy(product, bias, labels, gradient=gradient)
    return (values, rank, d_logits) if gradient else (values, rank)


@tf.function(jit_compile=True, autograph=False)
def _xla_scores(logits, labels, gradient):
    top = tf.reduce_max(logits, -1, keepdims=True)
    exp = tf.exp(logits - top)
    total = tf.reduce_sum(exp, -1)
    target = tf.gather(logits, labels, batch_dims=1)
    rank = tf.reduce_sum(tf.cast(logits > target[:, None], tf.int32), -1)
    losses = tf.math.log(total) + top[:, 0] - target
    if not gradient:
        return losses, rank
    softmax = exp * (1 / total)[:, None]
    return losses, rank, softmax - tf.one_hot(labels, tf.shape(logits)[-1], dtype=logits.dtype)


def _flat(labels, logits_or_features):
    labels = tf.reshape(labels, [-1])
    return labels, tf.reshape(logits_or_features, [tf.size(labels), -1])


def token_losses(labels, logits, training=True):
    """``(losses, ranks)``: ``log sum exp(z) - z_label`` of every token, flattened, and its label's rank.

    The same values and gradient as ``tf.nn.sparse_softmax_cross_entropy_with_logits``.
    """
    labels, logits = _flat(labels, logits)
    # stop_gradient: an eager tape must not try to differentiate the XLA function itself.
    if not training:
        return _scores(tf.stop_gradient(logits), labels, False)

    @tf.custom_gradient
    def losses(logits):
        values, rank, d_logits = _scores(tf.stop_gradient(logits), labels, True)
        return (values, rank), lambda upstream, _: d_logits * upstream[:, None]

    return losses(logits)


def projected_token_losses(x, kernel, bias, labels, training=True):
    """``token_losses(labels, x @ kernel + bias)``, in training with the fused backward pass.

    In the backward pass ``dx`` comes before ``dW``, as in :func:`lm_app.layers.project`:
    the recurrent layer below waits for ``dx``; nothing waits for ``dW``.
    """
    labels, x = _flat(labels, x)
    kernel = tf.convert_to_tensor(kernel)
    bias = tf.convert_to_tensor(bias)
    if not training:
        return _scores(tf.stop_gradient(tf.matmul(x, kernel)), labels, False, bias)

    @tf.custom_gradient
    def losses(x, kernel, bias):
        values, rank, d_logits = _scores(tf.stop_gradient(tf.matmul(x, kernel)), labels, True, bias)

        def grad(upstream, _):
            dx = tf.matmul(d_logits, kernel, transpose_b=True) * upstream[:, None]
            with tf.control_dependencies([dx]):
                d_kernel = tf.matmul(x * upstream[:, None], d_logits, transpose_a=True)
            return dx, d_kernel, tf.linalg.matvec(d_logits, upstream, transpose_a=True)

        return (values, rank), grad

    return losses(x, kernel, bias)


def totals(losses, ranks):
    """``[sum of losses, top-1 hits, top-5 hits, tokens]`` in float64: what running metrics add up."""
    def count(hits):
        return tf.reduce_sum(tf.cast(hits, tf.float64))

    return tf.stack([tf.reduce_sum(tf.cast(losses, tf.float64)), count(ranks < 1), count(ranks < 5),
                     tf.cast(tf.size(ranks), tf.float64)])


def perplexity(loss):
    """exp of a mean loss per token; the clamp avoids an overflow when an untrained model scores badly."""
    return math.exp(min(loss, 700))

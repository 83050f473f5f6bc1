"""The adaptive softmax (Grave et al. 2017), laid out as PyTorch's ``nn.AdaptiveLogSoftmaxWithLoss``.

The vocabulary in id order, most frequent first (see ``corpus.Vocabulary``),
is cut at ``cutoffs`` c_0 < c_1 < ...: the head scores the ids below c_0 and
one entry per tail cluster; cluster i scores the ids in [c_i, c_{i+1}) (the
last ends at the vocabulary's size) from the hidden state projected down to
``d // div_value**(i + 1)`` units, so a rare word costs far less than a
frequent one:

    log p(w) = log softmax(x H + b)[w]                                          w < c_0
    log p(w) = log softmax(x H + b)[c_0 + i] + log softmax(x P_i T_i + b_i)[w - c_i]   w in cluster i

Unlike PyTorch's, the head and each cluster's output have a bias (as our full
softmax layer has); the projections ``P_i`` have none.

Training (:meth:`AdaptiveSoftmax.token_losses`) never builds the
full-vocabulary logits: the head scores every token, each cluster only the
tokens whose label is in it.  Everything else (the model's output, held-out
scores, the SavedModel) reads the exact log-probabilities of the whole
vocabulary, so a softmax over them gives them back and the code downstream
treats them as logits.
"""
import math

import keras
import tensorflow as tf
from keras import ops

from .. import losses, native
from .projection import project

MIN_BUCKET = 16


def cluster_of(labels, cutoffs):
    """0 for a label in the head, ``i + 1`` for one in tail cluster ``i``."""
    return tf.add_n([tf.cast(labels >= c, tf.int32) for c in cutoffs])


def bucket(count):
    """``count`` rounded up to a power of two (at least MIN_BUCKET): the few shapes XLA compiles a tail's scores for."""
    power = tf.math.ceil(tf.math.log(tf.cast(tf.maximum(count, 1), tf.float32)) / math.log(2.0))
    return tf.maximum(tf.maximum(tf.cast(2.0 ** power, tf.int32), count), MIN_BUCKET)


@keras.saving.register_keras_serializable(package="lm_app")
class AdaptiveSoftmax(keras.layers.Layer):
    """``x[..., d]`` -> the log-probabilities ``[..., units]`` of the next word, in a head and tail clusters."""

    def __init__(self, units, cutoffs, div_value=4.0, **kwargs):
        super().__init__(**kwargs)
        cutoffs = tuple(int(c) for c in cutoffs)
        # TrainConfig.validate's rule, asserted for direct callers.
        assert cutoffs and 0 < cutoffs[0] and list(cutoffs) == sorted(set(cutoffs)) and cutoffs[-1] < units, cutoffs
        self.units, self.cutoffs, self.div_value = units, cutoffs, float(div_value)
        self.bounds = (*cutoffs, units)
        self.supports_masking = True  # each position on its own, as a Dense layer: a mask passes through

    def build(self, input_shape):
        d = input_shape[-1]
        head = self.cutoffs[0] + len(self.cutoffs)
        self.head_kernel = self.add_weight(shape=(d, head), name="head_kernel", initializer="glorot_uniform")
        self.head_bias = self.add_weight(shape=(head,), name="head_bias", initializer="zeros")
        self.tails = []
        for i, (start, end) in enumerate(zip(self.bounds, self.bounds[1:])):
            dim = self.tail_dim(d, i)
            self.tails.append((
                self.add_weight(shape=(d, dim), name=f"tail{i + 1}_projection", initializer="glorot_uniform"),
                self.add_weight(shape=(dim, end - start), name=f"tail{i + 1}_kernel", initializer="glorot_uniform"),
                self.add_weight(shape=(end - start,), name=f"tail{i + 1}_bias", initializer="zeros"),
            ))

    def tail_dim(self, d, i):
        """Units of cluster ``i``'s projection: PyTorch's ``d // div_value**(i + 1)``, at least 1."""
        return max(1, int(d // self.div_value ** (i + 1)))

    def call(self, x, training=False):
        """The exact log-probabilities of every word (core ops only: the SavedModel runs this)."""
        head = ops.log_softmax(project(x, self.head_kernel, self.head_bias, training), axis=-1)
        c0 = self.cutoffs[0]
        parts = [head[..., :c0]]
        for i, (projection, kernel, bias) in enumerate(self.tails):
            tail = ops.log_softmax(ops.matmul(ops.matmul(x, projection), kernel) + bias, axis=-1)
            parts.append(head[..., c0 + i:c0 + i + 1] + tail)
        return ops.concatenate(parts, axis=-1)

    def token_losses(self, x, labels, training=True):
        """``(losses, ranks)`` of every token, flattened, as :func:`lm_app.losses.token_losses` gives them.

        Outside training: of the exact distribution.  In training, each token's
        loss is exact (``-log p(label)``) but is computed along its own path
        only, and its rank is the two-level one: the head entries above its own
        entry (a cluster counting as one), plus, for a tail word, the words of
        its cluster above it.
        """
        labels = tf.reshape(labels, [-1])
        x = tf.reshape(x, [tf.size(labels), -1])
        if not training:
            return losses.token_losses(labels, self(x), training=False)
        c0 = self.cutoffs[0]
        cluster = cluster_of(labels, self.cutoffs)
        head_labels = tf.where(cluster == 0, labels, c0 + cluster - 1)
        token_losses, ranks = losses.projected_token_losses(x, self.head_kernel, self.head_bias, head_labels)
        n = tf.shape(labels)[:1]
        pad = native.ops() is None  # the XLA scores compile once per shape; the native kernel takes any
        for i, (projection, kernel, bias) in enumerate(self.tails):
            rows = tf.cast(tf.where(cluster == i + 1)[:, 0], tf.int32)
            count = tf.size(rows)
            if pad:
                rows = tf.pad(rows, [[0, bucket(count) - count]])
            real = tf.range(tf.size(rows)) < count
            # gather_nd, not gather: its gradient is dense, so adding it to the head's needs no conversion.
            h = tf.matmul(tf.gather_nd(x, rows[:, None]), projection)
            tail_labels = tf.where(real, tf.gather(labels, rows) - self.bounds[i], 0)
            tail_losses, tail_ranks = losses.projected_token_losses(h, kernel, bias, tail_labels)
            token_losses += tf.scatter_nd(rows[:, None], tf.where(real, tail_losses, 0.0), n)
            ranks += tf.scatter_nd(rows[:, None], tf.where(real, tail_ranks, 0), n)
        return token_losses, ranks

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "cutoffs": list(self.cutoffs),
                "div_value": self.div_value}

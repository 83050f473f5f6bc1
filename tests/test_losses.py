"""The fused cross-entropy equals TensorFlow's: losses, gradients, and top-k counts equal to in_top_k."""
import numpy as np
import pytest
import tensorflow as tf

from lm_app.losses import perplexity, projected_token_losses, token_losses, totals


def reference(labels, logits):
    return tf.reshape(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits), [-1])


@pytest.mark.parametrize("scale", [1.0, 60.0])  # 60: logits far from 0, where a naive exp overflows
def test_token_losses_equal_tensorflows_cross_entropy_and_its_gradient(scale, native_or_xla):
    rng = np.random.default_rng(3)
    logits = tf.constant(rng.normal(size=(4, 5, 11)) * scale, tf.float32)
    labels = tf.constant(rng.integers(0, 11, size=(4, 5)), tf.int32)
    weights = tf.constant(rng.normal(size=20), tf.float32)  # per-token upstream gradients
    results = []
    for fn in (lambda y, z: token_losses(y, z)[0], reference):
        with tf.GradientTape() as tape:
            tape.watch(logits)
            losses = fn(labels, logits)
            total = tf.reduce_sum(losses * weights)
        results.append((losses.numpy(), tape.gradient(total, logits).numpy()))
    (ours, our_grad), (theirs, their_grad) = results
    assert ours.shape == (20,) and np.all(np.isfinite(ours))
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5 * scale)
    np.testing.assert_allclose(our_grad, their_grad, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(token_losses(labels, logits, training=False)[0].numpy(), theirs,
                               rtol=1e-5, atol=1e-5 * scale)


@pytest.mark.parametrize("training", [True, False])
def test_ranks_give_in_top_k_counts_ties_included(training, native_or_xla):
    rng = np.random.default_rng(4)
    logits = tf.constant(rng.integers(0, 4, size=(200, 9)), tf.float32)  # many ties
    labels = tf.constant(rng.integers(0, 9, size=200), tf.int32)
    _, ranks = token_losses(labels, logits, training)
    for k in (1, 2, 5):
        np.testing.assert_array_equal(ranks.numpy() < k, tf.math.in_top_k(labels, logits, k).numpy())


def test_projected_losses_equal_the_plain_product_in_values_and_every_gradient(native_or_xla):
    """The backward pass scales x and the product by the upstream weights; the result must not change."""
    rng = np.random.default_rng(5)
    x = tf.constant(rng.normal(size=(3, 4, 6)), tf.float32)
    kernel = tf.constant(rng.normal(size=(6, 13)), tf.float32)
    bias = tf.constant(rng.normal(size=13), tf.float32)
    labels = tf.constant(rng.integers(0, 13, size=(3, 4)), tf.int32)
    weights = tf.constant(rng.normal(size=12), tf.float32)
    results = []
    for fn in (lambda: projected_token_losses(x, kernel, bias, labels)[0],
               lambda: reference(labels, tf.matmul(x, kernel) + bias)):
        with tf.GradientTape() as tape:
            tape.watch([x, kernel, bias])
            losses = fn()
            total = tf.reduce_sum(losses * weights)
        results.append([losses, *tape.gradient(total, [x, kernel, bias])])
    for ours, theirs in zip(*results):
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-5, atol=1e-5)
    inference, ranks = projected_token_losses(x, kernel, bias, labels, training=False)
    np.testing.assert_allclose(inference.numpy(), results[1][0].numpy(), rtol=1e-5, atol=1e-5)
    assert ranks.shape == (12,)


def test_totals_sum_losses_and_count_top1_top5_and_tokens():
    got = totals(tf.constant([1.0, 2.0, 3.5]), tf.constant([0, 4, 5]))
    assert got.dtype == tf.float64
    np.testing.assert_array_equal(got.numpy(), [6.5, 1, 2, 3])


def test_perplexity_is_exp_of_the_loss_and_stays_finite_when_training_diverged():
    assert perplexity(0.0) == 1.0
    assert perplexity(np.log(120.0)) == pytest.approx(120.0)
    assert perplexity(750.0) == perplexity(700.0) == np.exp(700.0)  # math.exp(750) would raise

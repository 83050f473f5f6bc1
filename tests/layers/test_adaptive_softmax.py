"""The adaptive softmax (lm_app/layers/adaptive_softmax.py): an exact distribution, and a training path scoring it."""
import numpy as np
import pytest
import tensorflow as tf

from lm_app.layers import AdaptiveSoftmax
from tests.layers.common import randomize

VOCAB, CUTOFFS, FEATURES = 23, (5, 9, 16), 8


def log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def numpy_log_probs(x, layer):
    """Grave et al.'s two-level distribution, from the layer's weights, in float64."""
    head_kernel, head_bias, *tails = [w.astype(np.float64) for w in layer.get_weights()]
    head = log_softmax(x @ head_kernel + head_bias)
    c0 = CUTOFFS[0]
    parts = [head[:, :c0]]
    for i in range(len(CUTOFFS)):
        projection, kernel, bias = tails[3 * i:3 * i + 3]
        parts.append(head[:, c0 + i:c0 + i + 1] + log_softmax(x @ projection @ kernel + bias))
    return np.concatenate(parts, axis=1)


def make_layer(seed=1):
    layer = AdaptiveSoftmax(VOCAB, CUTOFFS)
    layer.build((None, FEATURES))
    randomize(layer, seed=seed, scale=1.0)
    return layer


def features_and_labels(n=40, seed=0):
    """Features, and labels that hit the head and every cluster (every id at least once)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, FEATURES)).astype(np.float32)
    labels = np.concatenate([np.arange(VOCAB), rng.integers(0, VOCAB, n - VOCAB)]).astype(np.int32)
    return x, labels


def test_the_log_probabilities_sum_to_one_and_equal_a_numpy_reference():
    layer = make_layer()
    x, _ = features_and_labels()
    log_probs = layer(x).numpy()
    assert log_probs.shape == (len(x), VOCAB)
    assert [w.shape[-1] for w in layer.get_weights()[2::3]] == [2, 1, 1]  # 8 // 4, then at least 1
    np.testing.assert_allclose(np.exp(log_probs.astype(np.float64)).sum(-1), 1, atol=1e-5)
    np.testing.assert_allclose(log_probs, numpy_log_probs(x.astype(np.float64), layer), atol=1e-5)


def test_it_reads_sequences_and_its_config_rebuilds_it():
    layer = make_layer()
    x = np.random.default_rng(2).normal(size=(3, 4, FEATURES)).astype(np.float32)
    assert layer(x).shape == (3, 4, VOCAB)
    again = AdaptiveSoftmax.from_config(layer.get_config())
    assert (again.units, again.cutoffs, again.div_value) == (VOCAB, CUTOFFS, 4.0)


@pytest.mark.parametrize("training", [True, False])
def test_the_loss_is_minus_the_log_probability_and_has_its_gradient(native_or_xla, training):
    """Training scores each token along its own path only: the same loss and gradients as the exact distribution.

    Held out, the scores come from the exact distribution with no gradient (as the full softmax's).
    """
    layer = make_layer()
    x, labels = features_and_labels()
    x = tf.constant(x)
    weights = tf.constant(np.random.default_rng(3).uniform(0.5, 1.5, len(labels)), tf.float32)
    results = []
    for path in ("ours", "exact"):
        with tf.GradientTape() as tape:
            tape.watch(x)
            if path == "ours":
                losses, ranks = layer.token_losses(x, labels, training=training)
            else:
                losses = -tf.gather(layer(x), labels, batch_dims=1)
            total = tf.reduce_sum(losses * weights)
        results.append([losses, *(tape.gradient(total, [x, *layer.trainable_weights]) if training else [])])
    for ours, exact in zip(*results, strict=True):
        np.testing.assert_allclose(ours.numpy(), exact.numpy(), rtol=1e-4, atol=1e-5)
    log_probs = numpy_log_probs(x.numpy().astype(np.float64), layer)
    if not training:  # held-out ranks are over the whole vocabulary
        exact_ranks = (log_probs > log_probs[np.arange(len(labels)), labels][:, None] + 1e-6).sum(-1)
        np.testing.assert_array_equal(ranks.numpy(), exact_ranks)
    else:  # the two-level rank: never below the head's entries above the label's own entry
        assert (ranks.numpy() >= 0).all() and ranks.numpy().max() < VOCAB


def test_a_batch_with_no_token_in_a_cluster_trains(native_or_xla):
    """In a compiled step, as the trainer runs it."""
    layer = make_layer()
    x, _ = features_and_labels()
    labels = np.zeros(len(x), np.int32) + 3  # the head only

    @tf.function
    def step(x, labels):
        with tf.GradientTape() as tape:
            losses, _ = layer.token_losses(x, labels, training=True)
            mean = tf.reduce_mean(losses)
        return losses, tape.gradient(mean, layer.trainable_weights)

    losses, grads = step(x, labels)
    np.testing.assert_allclose(losses.numpy(), -numpy_log_probs(x.astype(np.float64), layer)[:, 3], rtol=1e-4)
    assert not np.abs(grads[-1].numpy()).any()  # the last cluster scored nothing

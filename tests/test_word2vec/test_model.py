"""The negative-sampling loss and its gradient (TensorFlow) against a NumPy reference written here."""
import numpy as np
import tensorflow as tf

from lm_app.word2vec.model import Word2VecTables, context_windows, ns_loss


def numpy_loss_and_gradients(h, out, labels, weights):
    """-sum w (y log s(x) + (1-y) log s(-x)), x = h.o; dL/dx = w (s(x) - y)."""
    sigmoid = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    x = np.einsum("pd,pkd->pk", h, out)
    loss = -np.sum(weights * (labels * np.log(sigmoid(x)) + (1 - labels) * np.log(sigmoid(-x))))
    dx = weights * (sigmoid(x) - labels)
    return loss, np.einsum("pk,pkd->pd", dx, out), dx[:, :, None] * h[:, None, :]


def test_ns_loss_and_gradient_equal_numpy():
    rng = np.random.default_rng(0)
    h, out = rng.normal(size=(4, 7)), rng.normal(size=(4, 3, 7))
    labels = np.tile([1.0, 0.0, 0.0], (4, 1))
    weights = rng.uniform(size=(4, 3))
    h_t, out_t = tf.constant(h, tf.float32), tf.constant(out, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch([h_t, out_t])
        loss = ns_loss(h_t, out_t, tf.constant(labels, tf.float32), tf.constant(weights, tf.float32))
    dh, dout = tape.gradient(loss, [h_t, out_t])
    want_loss, want_dh, want_dout = numpy_loss_and_gradients(h, out, labels, weights)
    np.testing.assert_allclose(loss.numpy(), want_loss, rtol=1e-5)
    np.testing.assert_allclose(dh.numpy(), want_dh, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(dout.numpy(), want_dout, rtol=1e-4, atol=1e-6)


def test_tables_start_as_gensims():
    tables = Word2VecTables(50, 10, seed=3)
    syn0 = tables.syn0.numpy()
    assert np.abs(syn0).max() <= 0.5 / 10 and syn0.std() > 0.01
    assert not tables.syn1neg.numpy().any()


def test_dynamic_window_sees_offset_o_with_probability_window_minus_o_plus_1_over_window():
    """b uniform in [0, window), window - b each side: offset o is seen with probability (window - |o| + 1) / window."""
    window, n = 5, 20_000
    sentence = tf.constant(np.repeat([0, 1], n // 2), tf.int64)
    context, valid = context_windows(sentence, window, tf.constant([4, 2], tf.int64))
    valid = valid.numpy()[window:n // 2 - window]  # centres whose whole window lies inside sentence 0
    offsets = [o for o in range(-window, window + 1) if o]
    for column, o in enumerate(offsets):
        p = (window - abs(o) + 1) / window
        assert abs(valid[:, column].mean() - p) <= 3 * np.sqrt(p * (1 - p) / len(valid)) + 1e-12, o
    edge = context_windows(sentence, window, tf.constant([4, 2], tf.int64))[1].numpy()[n // 2 - 1]
    assert not edge[window:].any()  # the last word of sentence 0 sees nothing of sentence 1

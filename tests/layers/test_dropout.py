"""Our Dropout: the very masks and numbers of keras.layers.Dropout, as a product; our cells' masks: Keras'."""
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import lm_app
from lm_app.layers import RNN, Dropout, GRUCell, LSTMCell, SimpleRNNCell

from .common import masked_batch, randomize


# (3, 5, 7): a size that leaves a partial group of four draws and a partial vector of features.
@pytest.mark.parametrize("shape", [(4, 6, 8), (3, 5, 7), (2, 35, 200)])
@pytest.mark.parametrize("rate", [0.2, 0.5])
def test_same_outputs_and_gradients_as_keras_dropout(rate, shape, native_or_xla):
    x = tf.constant(np.random.default_rng(0).normal(size=shape), tf.float32)
    ours, theirs = Dropout(rate, seed=7), keras.layers.Dropout(rate, seed=7)
    for _ in range(3):  # the seed state advances in step
        results = []
        for layer in (ours, theirs):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = layer(x, training=True)
                loss = tf.reduce_sum(y * tf.range(float(shape[-1])))  # a different weight per feature
            results.append((y.numpy(), tape.gradient(loss, x).numpy()))
        (y_ours, g_ours), (y_theirs, g_theirs) = results
        np.testing.assert_array_equal(y_ours, y_theirs)
        np.testing.assert_array_equal(g_ours, g_theirs)
        dropped = (y_ours == 0).mean()
        assert 0.5 * rate < dropped < 1.5 * rate
    np.testing.assert_array_equal(ours(x, training=False).numpy(), x.numpy())


@pytest.mark.parametrize("shape", [(4, 6, 8), (3, 5, 7)])
def test_a_time_major_input_gets_the_masks_of_its_batch_major_twin(shape, native_or_xla):
    x = tf.constant(np.random.default_rng(1).normal(size=shape), tf.float32)  # batch-major
    batch_major, time_major = Dropout(0.3, seed=5), Dropout(0.3, seed=5)
    for _ in range(2):
        expected = batch_major(x, training=True)
        got = time_major(tf.transpose(x, [1, 0, 2]), training=True, time_major=True)
        np.testing.assert_array_equal(tf.transpose(got, [1, 0, 2]).numpy(), expected.numpy())


# Keras' GRU and LSTM use one mask per gate once recurrent_dropout is on; ours share one, as they do without.
@pytest.mark.parametrize("builtin, ours, recurrent_dropout", [
    (keras.layers.SimpleRNN, SimpleRNNCell, 0.4), (keras.layers.GRU, GRUCell, 0.0),
    (keras.layers.LSTM, LSTMCell, 0.0)])
def test_our_cells_draw_the_masks_of_keras_own_cells(builtin, ours, recurrent_dropout):
    """Same seed, same masks, bit for bit, on every call (each call draws new ones, as in Keras)."""
    x, _ = masked_batch()
    theirs = builtin(5, dropout=0.3, recurrent_dropout=recurrent_dropout, seed=7, return_sequences=True)
    mine = RNN(ours(5, dropout=0.3, recurrent_dropout=recurrent_dropout, seed=7), return_sequences=True)
    theirs(x)
    mine(x)
    randomize(theirs)
    mine.set_weights(theirs.get_weights())
    calls = [(theirs(x, training=True).numpy(), mine(x, training=True).numpy()) for _ in range(2)]
    assert np.abs(calls[0][0] - calls[1][0]).max() > 1e-3  # the second call drew other masks
    for a, b in calls:
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-6)


def test_a_cell_with_dropout_refuses_to_train_inside_keras_rnn():
    """keras.layers.RNN does not draw our cells' masks: a loud error, not a new mask at every step."""
    x, _ = masked_batch()
    layer = keras.layers.RNN(LSTMCell(5, dropout=0.3))
    layer(x)  # inference needs no mask
    with pytest.raises(RuntimeError, match="lm_app.layers.RNN"):
        layer(x, training=True)


def test_no_module_imports_keras_private_api():
    sources = sorted(Path(lm_app.__file__).parent.rglob("*.py"))
    assert [p.name for p in sources if "keras.src" in p.read_text()] == []


def test_in_a_graph_each_call_draws_one_mask_per_sequence_as_eagerly():
    """Inside tf.function the masks are drawn before the loop (not at every step) and not kept across calls."""
    x, _ = masked_batch()
    eager, graph = (RNN(GRUCell(5, dropout=0.3, recurrent_dropout=0.3, seed=3), return_sequences=True)
                    for _ in range(2))
    for layer in (eager, graph):
        layer(x)
    graph.set_weights(eager.get_weights())
    train = tf.function(lambda x: graph(x, training=True))
    for _ in range(2):
        np.testing.assert_array_equal(train(x).numpy(), eager(x, training=True).numpy())

"""Our SimpleRNNCell against keras.layers.SimpleRNN, hand-written BPTT and central differences."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from lm_app.layers import SimpleRNNCell

from .common import (UNITS, assert_dropout_behaves, assert_matches_builtin, assert_round_trip,
               max_numeric_gradient_error, randomize)
from .numpy_reference import rnn_backward, rnn_forward


@pytest.mark.parametrize("return_sequences", [True, False])
def test_matches_keras_simple_rnn(return_sequences):
    builtin = keras.layers.SimpleRNN(UNITS, return_sequences=return_sequences, return_state=True)
    assert_matches_builtin(builtin, SimpleRNNCell(UNITS), return_sequences)


def test_matches_numpy_bptt():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(3, 7, 4))
    h0 = 0.5 * rng.normal(size=(3, UNITS))
    G = rng.normal(size=(3, 7, UNITS))
    rnn = keras.layers.RNN(SimpleRNNCell(UNITS, dtype="float64"), return_sequences=True,
                           dtype="float64")
    rnn(x)
    randomize(rnn, scale=0.7)
    W, U, b = (v.numpy() for v in rnn.trainable_variables)

    x_t, h0_t = tf.constant(x), tf.constant(h0)
    with tf.GradientTape() as tape:
        tape.watch([x_t, h0_t])
        out = rnn(x_t, initial_state=[h0_t])
        loss = tf.reduce_sum(out * G)
    dx, dh0, dW, dU, db = tape.gradient(loss, [x_t, h0_t, *rnn.trainable_variables])

    np.testing.assert_allclose(out.numpy(), rnn_forward(x, h0, W, U, b), rtol=0, atol=1e-12)
    ref = rnn_backward(x, h0, W, U, b, G)
    for name, got in (("x", dx), ("h0", dh0), ("W", dW), ("U", dU), ("b", db)):
        np.testing.assert_allclose(got.numpy(), ref[name], rtol=0, atol=1e-5, err_msg=name)
        assert np.abs(ref[name]).max() > 1e-2, name


def test_numeric_gradient():
    assert max_numeric_gradient_error(SimpleRNNCell(UNITS, dtype="float64")) < 1e-6


def test_save_and_load(tmp_path):
    loaded = assert_round_trip(SimpleRNNCell(UNITS, dropout=0.25, seed=3), tmp_path)
    config = loaded.layers[1].cell.get_config()
    assert (config["units"], config["dropout"], config["seed"]) == (UNITS, 0.25, 3)


@pytest.mark.parametrize("dropout, recurrent_dropout", [(0.5, 0.0), (0.0, 0.5)])
def test_dropout(dropout, recurrent_dropout):
    assert_dropout_behaves(lambda **kw: SimpleRNNCell(UNITS, **kw), dropout, recurrent_dropout)

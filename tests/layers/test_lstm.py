"""Our LSTMCell against keras.layers.LSTM, a hand-written peephole BPTT and central differences."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from lm_app.layers import LSTMCell
from lm_app.layers.lstm import lstm_step
from lm_app.numpy_reference import lstm_backward, lstm_forward

from .common import (FEATURES, UNITS, assert_dropout_behaves, assert_matches_builtin,
               assert_round_trip, max_numeric_gradient_error, randomize)


@pytest.mark.parametrize("return_sequences", [True, False])
def test_matches_keras_lstm(return_sequences):
    builtin = keras.layers.LSTM(UNITS, return_sequences=return_sequences, return_state=True)
    assert_matches_builtin(builtin, LSTMCell(UNITS), return_sequences)


def test_weight_layout_is_keras():
    rnn = keras.layers.RNN(LSTMCell(UNITS, peephole=True))
    rnn(np.zeros((1, 2, FEATURES), "float32"))
    assert [(v.path.split("/")[-1], tuple(v.shape)) for v in rnn.weights if v.trainable] == [
        ("kernel", (FEATURES, 4 * UNITS)), ("recurrent_kernel", (UNITS, 4 * UNITS)),
        ("bias", (4 * UNITS,)), ("peephole_i", (UNITS,)), ("peephole_f", (UNITS,)),
        ("peephole_o", (UNITS,))]
    for name in ("peephole_i", "peephole_f", "peephole_o"):
        assert not np.any(getattr(rnn.cell, name).numpy())  # a peephole cell starts as a plain one


def test_peephole_matches_numpy_forward_and_bptt():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(3, 7, 4))
    h0, c0 = 0.5 * rng.normal(size=(2, 3, UNITS))
    G = rng.normal(size=(3, 7, UNITS))
    rnn = keras.layers.RNN(LSTMCell(UNITS, peephole=True, dtype="float64"),
                           return_sequences=True, return_state=True, dtype="float64")
    rnn(x)
    randomize(rnn, scale=0.7)  # non-zero peepholes, so that their paths are exercised
    weights = [v.numpy() for v in rnn.trainable_variables]  # W, U, b, p_i, p_f, p_o

    x_t, h0_t, c0_t = map(tf.constant, (x, h0, c0))
    with tf.GradientTape() as tape:
        tape.watch([x_t, h0_t, c0_t])
        out, h, c = rnn(x_t, initial_state=[h0_t, c0_t])
        loss = tf.reduce_sum(out * G)
    grads = tape.gradient(loss, [x_t, h0_t, c0_t, *rnn.trainable_variables])

    ref_out, ref_h, ref_c, _ = lstm_forward(x, h0, c0, *weights)
    for got, want in ((out, ref_out), (h, ref_h), (c, ref_c)):
        np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=1e-12)
    ref = lstm_backward(x, h0, c0, *weights, G)
    names = ["x", "h0", "c0", "W", "U", "b", "p_i", "p_f", "p_o"]
    for name, got in zip(names, grads):
        np.testing.assert_allclose(got.numpy(), ref[name], rtol=0, atol=1e-5, err_msg=name)
        assert np.abs(ref[name]).max() > 1e-2, name


@pytest.mark.parametrize("peephole", [False, True])
def test_the_shared_step_is_the_numpy_step_gates_included(peephole):
    """lstm_step, which the cell, the training loop and the inference scan all call, is one NumPy step."""
    rng = np.random.default_rng(6)
    x = rng.normal(size=(3, 1, 4))
    h0, c0 = 0.5 * rng.normal(size=(2, 3, UNITS))
    W, U = rng.normal(size=(4, 4 * UNITS)), rng.normal(size=(UNITS, 4 * UNITS))
    b = rng.normal(size=4 * UNITS)
    peepholes = tuple(rng.normal(size=(3, UNITS))) if peephole else None
    h, c, gates = lstm_step(tf.constant(x[:, 0] @ W + h0 @ U + b), tf.constant(c0), peepholes)

    _, ref_h, ref_c, [(_, _, *ref_gates, _)] = lstm_forward(x, h0, c0, W, U, b,
                                                          *(peepholes or np.zeros((3, UNITS))))
    for got, want in zip((h, c, *gates), (ref_h, ref_c, *ref_gates)):
        np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("peephole", [False, True])
def test_numeric_gradient(peephole):
    cell = LSTMCell(UNITS, peephole=peephole, dtype="float64")
    assert max_numeric_gradient_error(cell) < 1e-6


def test_save_and_load_keeps_peepholes_and_forget_bias(tmp_path):
    loaded = assert_round_trip(LSTMCell(UNITS, peephole=True, forget_bias=0.5), tmp_path)
    cell = loaded.layers[1].cell
    assert (cell.units, cell.peephole, cell.forget_bias) == (UNITS, True, 0.5)
    assert np.any(cell.peephole_o.numpy())  # the randomized values came back, not zeros


@pytest.mark.parametrize("forget_bias", [1.0, 0.5, 0.0])
def test_forget_bias_initialises_only_the_forget_gate(forget_bias):
    rnn = keras.layers.RNN(LSTMCell(UNITS, forget_bias=forget_bias))
    rnn(np.zeros((1, 2, FEATURES), "float32"))
    bias = rnn.cell.bias.numpy()
    expected = np.zeros(4 * UNITS, "float32")
    expected[UNITS:2 * UNITS] = forget_bias
    np.testing.assert_array_equal(bias, expected)


@pytest.mark.parametrize("dropout, recurrent_dropout", [(0.5, 0.0), (0.0, 0.5)])
def test_dropout(dropout, recurrent_dropout):
    assert_dropout_behaves(lambda **kw: LSTMCell(UNITS, peephole=True, **kw), dropout,
                           recurrent_dropout)

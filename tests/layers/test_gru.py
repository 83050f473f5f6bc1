"""Our GRUCell against keras.layers.GRU (both reset_after modes), hand-written BPTT and central differences."""
import keras
import numpy as np
import pytest

import tensorflow as tf

from lm_app.layers import GRUCell
from lm_app.layers.gru import gru_step
from lm_app.numpy_reference import gru_backward, gru_forward

from .common import (FEATURES, UNITS, assert_dropout_behaves, assert_matches_builtin,
                     assert_matches_numpy_bptt, assert_round_trip, max_numeric_gradient_error)


@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("return_sequences", [True, False])
def test_matches_keras_gru(return_sequences, reset_after):
    builtin = keras.layers.GRU(UNITS, reset_after=reset_after, return_sequences=return_sequences,
                               return_state=True)
    assert_matches_builtin(builtin, GRUCell(UNITS, reset_after=reset_after), return_sequences)


@pytest.mark.parametrize("reset_after, bias_shape", [(True, (2, 3 * UNITS)),
                                                     (False, (3 * UNITS,))])
def test_weight_layout_is_keras(reset_after, bias_shape):
    rnn = keras.layers.RNN(GRUCell(UNITS, reset_after=reset_after))
    rnn(np.zeros((1, 2, FEATURES), "float32"))
    assert [tuple(v.shape) for v in rnn.trainable_variables] == [
        (FEATURES, 3 * UNITS), (UNITS, 3 * UNITS), bias_shape]


def test_matches_numpy_bptt():
    assert_matches_numpy_bptt(GRUCell(UNITS, dtype="float64"), gru_forward, gru_backward)


@pytest.mark.parametrize("reset_after", [True, False])
def test_numeric_gradient(reset_after):
    cell = GRUCell(UNITS, reset_after=reset_after, dtype="float64")
    assert max_numeric_gradient_error(cell) < 1e-6


@pytest.mark.parametrize("reset_after", [True, False])
def test_save_and_load(tmp_path, reset_after):
    loaded = assert_round_trip(GRUCell(UNITS, reset_after=reset_after), tmp_path)
    assert loaded.layers[1].cell.reset_after is reset_after


@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("dropout, recurrent_dropout", [(0.5, 0.0), (0.0, 0.5)])
def test_dropout(dropout, recurrent_dropout, reset_after):
    assert_dropout_behaves(lambda **kw: GRUCell(UNITS, reset_after=reset_after, **kw), dropout,
                           recurrent_dropout)


def test_the_shared_step_is_the_numpy_step():
    """gru_step, which the cell, the XLA training loop and the inference scan all call, is one NumPy step."""
    rng = np.random.default_rng(6)
    x = rng.normal(size=(3, 1, 4))
    h0 = 0.5 * rng.normal(size=(3, UNITS))
    W, U, b = rng.normal(size=(4, 3 * UNITS)), rng.normal(size=(UNITS, 3 * UNITS)), rng.normal(size=(2, 3 * UNITS))
    h, _ = gru_step(tf.constant(x[:, 0] @ W + b[0]), tf.constant(h0 @ U + b[1]), tf.constant(h0))
    expected, _ = gru_forward(x, h0, W, U, b)
    np.testing.assert_allclose(h.numpy(), expected[:, 0], rtol=0, atol=1e-12)

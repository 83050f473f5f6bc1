"""Our SimpleRNNCell against keras.layers.SimpleRNN, hand-written BPTT and central differences."""
from functools import partial

import keras
import pytest

from lm_app.layers import SimpleRNNCell
from lm_app.numpy_reference import rnn_backward, rnn_forward

from .common import (UNITS, assert_dropout_behaves, assert_matches_builtin,
                     assert_matches_numpy_bptt, assert_round_trip, max_numeric_gradient_error)


@pytest.mark.parametrize("return_sequences", [True, False])
def test_matches_keras_simple_rnn(return_sequences):
    builtin = keras.layers.SimpleRNN(UNITS, return_sequences=return_sequences, return_state=True)
    assert_matches_builtin(builtin, SimpleRNNCell(UNITS), return_sequences)


@pytest.mark.parametrize("activation", ["tanh", "sigmoid"])  # sigmoid: the binary-addition program's
def test_matches_numpy_bptt(activation):
    assert_matches_numpy_bptt(SimpleRNNCell(UNITS, activation=activation, dtype="float64"),
                              partial(rnn_forward, activation=activation),
                              partial(rnn_backward, activation=activation))


def test_numeric_gradient():
    assert max_numeric_gradient_error(SimpleRNNCell(UNITS, dtype="float64")) < 1e-6


def test_save_and_load(tmp_path):
    loaded = assert_round_trip(SimpleRNNCell(UNITS, dropout=0.25, seed=3), tmp_path)
    config = loaded.layers[1].cell.get_config()
    assert (config["units"], config["dropout"], config["seed"]) == (UNITS, 0.25, 3)


@pytest.mark.parametrize("dropout, recurrent_dropout", [(0.5, 0.0), (0.0, 0.5)])
def test_dropout(dropout, recurrent_dropout):
    assert_dropout_behaves(lambda **kw: SimpleRNNCell(UNITS, **kw), dropout, recurrent_dropout)

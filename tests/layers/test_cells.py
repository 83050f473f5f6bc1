"""CELLS: one table of recurrent cells, shared by the language models and seq2seq."""
from lm_app import models
from lm_app.layers import GRUCell, LSTMCell, SimpleRNNCell, cells, seq2seq


def test_models_and_seq2seq_choose_from_the_same_table():
    assert cells.CELLS == {"rnn": SimpleRNNCell, "lstm": LSTMCell, "gru": GRUCell}
    assert models.CELLS is cells.CELLS
    assert seq2seq.CELLS is cells.CELLS

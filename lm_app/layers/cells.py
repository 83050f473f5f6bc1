"""The recurrent cells by name: the one table that ``--arch`` and ``Encoder(cell=...)`` choose from."""
from .gru import GRUCell
from .lstm import LSTMCell
from .rnn import SimpleRNNCell

CELLS = {"rnn": SimpleRNNCell, "lstm": LSTMCell, "gru": GRUCell}

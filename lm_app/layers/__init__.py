"""The project's own Keras layers, one file per family, each with its equations."""
from .bidirectional import bidirectional
from .gru import GRUCell
from .lstm import LSTMCell
from .rnn import SimpleRNNCell

__all__ = ["GRUCell", "LSTMCell", "SimpleRNNCell", "bidirectional"]

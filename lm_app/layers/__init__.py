"""The project's own Keras layers, one file per family, each with its equations."""
from .rnn import SimpleRNNCell

__all__ = ["SimpleRNNCell"]

"""The project's own Keras layers, one file per family, each with its equations."""
from .adaptive_softmax import AdaptiveSoftmax
from .attention import Attention
from .bidirectional import bidirectional
from .cells import CELLS
from .dropout import RNN, Dropout
from .gru import GRU, GRUCell
from .lstm import LSTM, LSTMCell
from .projection import Logits, project
from .rnn import SimpleRNNCell
from .seq2seq import Decoder, Encoder, padding_mask
from .time_major import TimeMajor

__all__ = ["CELLS", "AdaptiveSoftmax", "Attention", "Decoder", "Dropout", "Encoder", "GRU", "GRUCell", "LSTM",
           "LSTMCell", "Logits", "RNN", "SimpleRNNCell", "TimeMajor", "bidirectional", "padding_mask", "project"]

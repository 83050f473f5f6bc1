"""What the whole-sequence recurrent layers (:class:`~lm_app.layers.LSTM`, :class:`~lm_app.layers.GRU`) share.

Each runs its cell in the readable loop ``RNN(cell)`` where masks or
recurrent dropout need it, and otherwise a leaner path of its own
(``_fast``): the input projection ``x_t W + b`` of every step is one matmul
before the loop, and each step does only the recurrent product and the gates,
in training through a whole-sequence loop with hand-written BPTT (lm_app's
native kernels on a CPU, else the XLA-compiled loop :func:`xla` makes).
"""
import os

import keras
from keras import ops

from .dropout import RNN
from .time_major import call_time_major


def tf():
    import tensorflow  # only the fast paths need it; the cells stay backend-neutral

    return tensorflow


_compiled = {}


def xla(fn):
    """``fn`` compiled by XLA, which fuses each step's dozen small elementwise ops into one loop."""
    if fn not in _compiled:
        _compiled[fn] = tf().function(fn, jit_compile=True, reduce_retracing=True, autograph=False)
    return _compiled[fn]


def cpu_halves(batch):
    """The sizes of two half-batches for the XLA loops on a multi-core CPU, or None to run the batch whole.

    One loop's small matmuls keep one core busy, so there the batch runs as
    two half-batch loops, which TensorFlow schedules on two cores at once.
    """
    cpu_cores = 0 if tf().config.list_logical_devices("GPU") else os.cpu_count() or 1
    if batch is None or batch < 8 or cpu_cores < 2:
        return None
    return [batch // 2, batch - batch // 2]


class FusedRNN(keras.layers.Layer):
    """The readable loop or the subclass's ``_fast(x, initial_state, training) -> (hs, states)``.

    Args:
        cell: the layer's cell (its weights are the layer's).
        return_sequences: every step's ``h``, or only the last.
        return_state: also return the final states.
        fused: allow the fast path (off: always the readable loop).
        time_major: sequences (and masks) come and go as ``[time, batch, ...]``,
            the order the loops run in, which spares the fast path two transposes.
    """

    def __init__(self, cell, return_sequences=False, return_state=False, fused=True, time_major=False,
                 **kwargs):
        super().__init__(**kwargs)
        self.units = cell.units
        self.time_major = time_major
        self.return_sequences = return_sequences
        self.return_state = return_state
        self.fused = fused
        self.cell = cell
        self.rnn = RNN(cell, return_sequences=return_sequences, return_state=return_state, name="rnn")
        self.supports_masking = True

    def build(self, input_shape):
        self.rnn.build(self._batch_major(input_shape))

    def _batch_major(self, shape):
        return (shape[1], shape[0], *shape[2:]) if self.time_major else tuple(shape)

    def call(self, inputs, initial_state=None, mask=None, training=False):
        use_loop = (not self.fused or mask is not None or keras.backend.backend() != "tensorflow"
                    or (training and self.cell.recurrent_dropout > 0))
        if use_loop:
            if self.time_major:
                return call_time_major(self.rnn, inputs, initial_state=initial_state, mask=mask,
                                       training=training)
            return self.rnn(inputs, initial_state=initial_state, mask=mask, training=training)
        # Time first for the loop.  Transposing the input, not the projection, moves fewer bytes;
        # a time-major caller (the stream model) spares both transposes.
        x = inputs if self.time_major else tf().transpose(inputs, [1, 0, 2])
        hs, states = self._fast(x, initial_state, training)
        output = hs[-1]
        if self.return_sequences:
            output = hs if self.time_major else tf().transpose(hs, [1, 0, 2])
        return [output, *states] if self.return_state else output

    def _dropped(self, x, h0, training):
        """``x`` with the cell's input dropout, one mask per sequence as in the readable loop."""
        cell = self.cell
        if not (training and cell.dropout > 0):  # (recurrent_dropout is 0 on the fast path)
            return x
        cell.draw_dropout_masks(x[0], h0)
        x = x * cell.dropout_mask()[None]
        cell.clear_dropout_masks()
        return x

    def _zeros(self, x):
        return ops.zeros((ops.shape(x)[1], self.units), dtype=x.dtype)

    def compute_output_shape(self, input_shape):
        shapes = self.rnn.compute_output_shape(self._batch_major(input_shape))
        if not (self.time_major and self.return_sequences):
            return shapes
        if not self.return_state:
            return self._batch_major(shapes)
        return [self._batch_major(shapes[0]), *shapes[1:]]

    def get_config(self):
        cell = self.cell
        return {
            **super().get_config(),
            "units": self.units,
            "dropout": cell.dropout,
            "recurrent_dropout": cell.recurrent_dropout,
            "seed": cell.seed,
            "return_sequences": self.return_sequences,
            "return_state": self.return_state,
            "fused": self.fused,
            "time_major": self.time_major,
        }

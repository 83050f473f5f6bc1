"""Batch-major recurrent layers read and written time-major (``[time, batch, ...]``).

``keras.layers.RNN`` has no ``time_major`` option (Keras 2 had one); the
stream model runs time-major because that is the order our fast loops run
in, so the readable layers are given transposed sequences.
"""
import keras
from keras import ops


def call_time_major(rnn, inputs, mask=None, **kwargs):
    """``rnn`` (batch-major, with its ``return_sequences``/``return_state``) on time-major ``inputs`` and ``mask``."""
    if mask is not None:
        mask = ops.transpose(mask)
    outputs = rnn(ops.transpose(inputs, [1, 0, 2]), mask=mask, **kwargs)
    sequence, *states = outputs if rnn.return_state else [outputs]
    if rnn.return_sequences:
        sequence = ops.transpose(sequence, [1, 0, 2])
    return [sequence, *states] if rnn.return_state else sequence


class TimeMajor(keras.layers.Wrapper):
    """A batch-major recurrent layer that reads and returns time-major sequences."""

    def build(self, input_shape):
        time, batch, features = input_shape
        self.layer.build((batch, time, features))

    def call(self, inputs, initial_state=None, training=False):
        return call_time_major(self.layer, inputs, initial_state=initial_state, training=training)

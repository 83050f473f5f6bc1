"""Bidirectional RNN: one pass left to right, one right to left, outputs concatenated.

    h_t = [forward_t ; backward_t],   forward reads x_1..x_t, backward reads x_T..x_t

For encoders only (tagging, classifying, encoding a source sentence): each
output sees the whole sequence.  A next-word language model must not use it,
since its backward half would read the very words it is asked to predict.

This is ``keras.layers.Bidirectional`` around our ``RNN`` (a
``keras.layers.RNN`` that draws our cells' dropout masks), which already handles masks (the backward pass starts at each row's last real
step); the helper only builds the two directions from a cell factory, since
each direction needs its own cell and its own weights.
"""
import keras

from .dropout import RNN


def bidirectional(cell_factory, return_sequences=False, merge_mode="concat", **rnn_kwargs):
    """A ``keras.layers.Bidirectional`` of two :class:`RNN` built by ``cell_factory()``.

    Args:
        cell_factory: callable with no argument that returns a fresh cell,
            e.g. ``lambda: LSTMCell(64)``; it is called once per direction.
        return_sequences: every step's output, or only the last one.
        merge_mode: how the two directions are combined (``"concat"``).
        **rnn_kwargs: passed to both :class:`RNN` (e.g. ``unroll``).
    """
    forward = RNN(cell_factory(), return_sequences=return_sequences, **rnn_kwargs)
    backward = RNN(cell_factory(), return_sequences=return_sequences,
                                go_backwards=True, **rnn_kwargs)
    return keras.layers.Bidirectional(forward, backward_layer=backward, merge_mode=merge_mode)

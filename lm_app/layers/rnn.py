"""Elman's simple recurrent cell, the notes' ``BasicRNNCell``.

    h_t = tanh(x_t W + h_{t-1} U + b)

Backpropagation through time multiplies the gradient by ``U^T diag(1 - h_t^2)``
once per step, which is why it vanishes (or explodes) over long spans: the
reason for the LSTM's constant error carousel (``lstm.py``).

Weights are laid out exactly as ``keras.layers.SimpleRNNCell`` lays them out
(``kernel``, ``recurrent_kernel``, ``bias``), so they copy across directly.
"""
import keras
from keras import ops

from .dropout import DropoutMasks


@keras.saving.register_keras_serializable(package="lm_app")
class SimpleRNNCell(keras.layers.Layer, DropoutMasks):
    """One step of a simple RNN, for use inside :class:`lm_app.layers.RNN`.

    Args:
        units: size of the hidden state.
        activation: ``"tanh"`` (default) keeps the state bounded.
        dropout: fraction of the input dropped, one mask per sequence
            (Gal & Ghahramani 2016), so the same units stay off at every step.
        recurrent_dropout: the same for the recurrent state.
        seed: seed of the dropout masks.
    """

    def __init__(self, units, activation="tanh", dropout=0.0, recurrent_dropout=0.0,
                 seed=None, **kwargs):
        if units <= 0:
            raise ValueError(f"units must be positive, got {units}")
        super().__init__(**kwargs)
        self.units = units
        self.activation = keras.activations.get(activation)
        self.dropout = float(dropout)
        self.recurrent_dropout = float(recurrent_dropout)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.state_size = units
        self.output_size = units

    def build(self, input_shape):
        self.kernel = self.add_weight(
            shape=(input_shape[-1], self.units), name="kernel", initializer="glorot_uniform")
        self.recurrent_kernel = self.add_weight(
            shape=(self.units, self.units), name="recurrent_kernel", initializer="orthogonal")
        self.bias = self.add_weight(shape=(self.units,), name="bias", initializer="zeros")

    def call(self, inputs, states, training=False):
        h_prev = states[0] if isinstance(states, (list, tuple)) else states
        if training and self.dropout > 0:
            inputs = inputs * self.dropout_mask()
        if training and self.recurrent_dropout > 0:
            h_prev = h_prev * self.recurrent_dropout_mask()
        h = self.activation(
            ops.matmul(inputs, self.kernel) + ops.matmul(h_prev, self.recurrent_kernel) + self.bias
        )
        return h, [h] if isinstance(states, (list, tuple)) else h

    def get_initial_state(self, batch_size=None):
        return [ops.zeros((batch_size, self.units), dtype=self.compute_dtype)]

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "activation": keras.activations.serialize(self.activation),
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "seed": self.seed,
        }

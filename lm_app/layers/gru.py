"""Gated recurrent unit (Cho et al. 2014): an LSTM with the cell folded into ``h``.

    z_t = sigmoid(x_t W_z + b_z + h_{t-1} U_z + b'_z)         update gate
    r_t = sigmoid(x_t W_r + b_r + h_{t-1} U_r + b'_r)         reset gate
    reset_after=True  (v3, cuDNN's):  n_t = tanh(x_t W_h + b_h + r_t * (h_{t-1} U_h + b'_h))
    reset_after=False (v1):           n_t = tanh(x_t W_h + b_h + (r_t * h_{t-1}) U_h)
    h_t = z_t * h_{t-1} + (1 - z_t) * n_t

``h_t`` is a gated average of the old state and the candidate, so like the
LSTM's cell it has a path back in time with no weight matrix on it
(``dh_{t-1} = z_t * dh_t`` plus the gated terms): two gates instead of three
and no separate cell, hence fewer weights per unit.  ``reset_after=True``
applies the reset after the matmul, so ``h_{t-1}`` meets all three gates in
one matmul; it needs its own recurrent bias ``b'``.

Weights are laid out as ``keras.layers.GRUCell`` lays them out: ``kernel``
(input_dim, 3*units), ``recurrent_kernel`` (units, 3*units), gates in the order
z, r, h; ``bias`` is (2, 3*units) (input bias, recurrent bias) with
``reset_after=True`` and (3*units,) without.
"""
import keras
from keras import ops

from .dropout import DropoutMasks


@keras.saving.register_keras_serializable(package="lm_app")
class GRUCell(keras.layers.Layer, DropoutMasks):
    """One step of a GRU, for use inside :class:`lm_app.layers.RNN`.

    Args:
        units: size of the hidden state.
        reset_after: reset gate after the recurrent matmul (default, as in
            Keras and cuDNN) or before it (the original paper).
        dropout: fraction of the input dropped, one mask per sequence shared
            by the three gates, so that they keep one matmul.
        recurrent_dropout: the same for ``h_{t-1}`` where it enters the
            matmuls; the update ``z * h_{t-1}`` sees the undropped state, as in Keras.
        seed: seed of the dropout masks.
    """

    def __init__(self, units, reset_after=True, dropout=0.0, recurrent_dropout=0.0, seed=None,
                 **kwargs):
        if units <= 0:
            raise ValueError(f"units must be positive, got {units}")
        super().__init__(**kwargs)
        self.units = units
        self.reset_after = bool(reset_after)
        self.dropout = float(dropout)
        self.recurrent_dropout = float(recurrent_dropout)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.state_size = units
        self.output_size = units

    def build(self, input_shape):
        units = self.units
        self.kernel = self.add_weight(
            shape=(input_shape[-1], 3 * units), name="kernel", initializer="glorot_uniform")
        self.recurrent_kernel = self.add_weight(
            shape=(units, 3 * units), name="recurrent_kernel", initializer="orthogonal")
        self.bias = self.add_weight(
            shape=(2, 3 * units) if self.reset_after else (3 * units,), name="bias",
            initializer="zeros")

    def call(self, inputs, states, training=False):
        h_prev = states[0] if isinstance(states, (list, tuple)) else states
        h_rec = h_prev
        if training and self.dropout > 0:
            inputs = inputs * self.dropout_mask()
        if training and self.recurrent_dropout > 0:
            h_rec = h_prev * self.recurrent_dropout_mask()
        units = self.units
        if self.reset_after:
            input_bias, recurrent_bias = self.bias[0], self.bias[1]
        else:
            input_bias = self.bias
        x_z, x_r, x_h = ops.split(ops.add(ops.matmul(inputs, self.kernel), input_bias), 3, axis=-1)
        if self.reset_after:
            inner = ops.matmul(h_rec, self.recurrent_kernel) + recurrent_bias
        else:
            inner = ops.matmul(h_rec, self.recurrent_kernel[:, :2 * units])
        z = ops.sigmoid(x_z + inner[:, :units])
        r = ops.sigmoid(x_r + inner[:, units:2 * units])
        if self.reset_after:
            candidate = ops.tanh(x_h + r * inner[:, 2 * units:])
        else:
            candidate = ops.tanh(x_h + ops.matmul(r * h_rec, self.recurrent_kernel[:, 2 * units:]))
        h = z * h_prev + (1 - z) * candidate
        return h, [h] if isinstance(states, (list, tuple)) else h

    def get_initial_state(self, batch_size=None):
        return [ops.zeros((batch_size, self.units), dtype=self.compute_dtype)]

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "reset_after": self.reset_after,
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "seed": self.seed,
        }

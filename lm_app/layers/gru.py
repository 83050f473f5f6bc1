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

``reset_after=True`` is also PyTorch's ``nn.GRU`` (its ``b_ih``, ``b_hh`` are
``bias[0]``, ``bias[1]``; its gates come in the order r, z, n).  :class:`GRU`
runs a whole sequence, as :class:`~lm_app.layers.LSTM` does: with
``reset_after`` and no mask, in training, through :func:`gru_recurrence`
(lm_app's native kernel, ``lm_app/native/gru.cc``, else an XLA loop).
"""
import keras
from keras import ops

from .. import native
from .dropout import DropoutMasks
from .fused import FusedRNN, cpu_halves, tf, xla
from .projection import project


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
            inner, reset = ops.matmul(h_rec, self.recurrent_kernel) + recurrent_bias, None
        else:
            input_bias = self.bias
            inner = ops.matmul(h_rec, self.recurrent_kernel[:, :2 * units])

            def reset(r):
                return ops.matmul(r * h_rec, self.recurrent_kernel[:, 2 * units:])
        h, _ = gru_step(ops.add(ops.matmul(inputs, self.kernel), input_bias), inner, h_prev, reset)
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


def gru_step(x, inner, h_prev, reset=None):
    """``(h_t, (z, r, n))`` from ``x = x_t W + b`` and the recurrent term ``inner``: the module's equations.

    The one Python copy of them: the cell, the XLA training loop and the
    inference scan all step through here (the native kernel is the other,
    tested equal).  With ``reset_after``, ``inner = h_{t-1} U + b'`` for all
    three gates; before, ``inner = h_{t-1} U_{z,r}`` and ``reset(r)`` is the
    candidate's recurrent term ``(r * h_{t-1}) U_h``.
    """
    x_z, x_r, x_h = ops.split(x, 3, axis=-1)
    i_z, i_r, *i_h = ops.split(inner, 3 if reset is None else 2, axis=-1)
    z = ops.sigmoid(x_z + i_z)
    r = ops.sigmoid(x_r + i_r)
    n = ops.tanh(x_h + (r * i_h[0] if reset is None else reset(r)))
    return z * h_prev + (1 - z) * n, (z, r, n)


def _forward(z_x, h0, recurrent_kernel, recurrent_bias):
    """Every step's ``h`` and ``[z, r, n, h_{t-1} U_n + b'_n]``, time first: what the native forward kernel returns."""
    t = tf()

    def step(carry, z_t):
        h, _ = carry
        inner = t.matmul(h, recurrent_kernel) + recurrent_bias
        h, gates = gru_step(z_t, inner, h)
        return h, t.concat([*gates, t.split(inner, 3, axis=-1)[2]], -1)

    return t.scan(step, z_x, initializer=(h0, t.zeros_like(t.concat([z_x[0], h0], -1))))


def _backward(dhs, hs, gates, h0, recurrent_kernel):
    """BPTT of :func:`_forward`: ``(dzx, dhu, dh0)``, the gradients of ``x_t W + b``, ``h_{t-1} U + b'`` and ``h0``.

    Each gate derivative is ``dh_t`` times a factor known from the forward
    pass, so the factors are computed for all steps before the loop, and each
    step is two products, ``dhu_t U^T`` and the update gate's ``dh_t z_t``.
    """
    t = tf()
    h_prev = t.concat([h0[None], hs[:-1]], 0)
    z, r, n, hn = t.split(gates, 4, axis=-1)
    d_update = (h_prev - n) * z * (1 - z)
    d_candidate = (1 - z) * (1 - n * n)
    d_reset = d_candidate * hn * r * (1 - r)
    per_dh = t.concat([d_update, d_reset, d_candidate * r], -1)  # dhu_t / dh_t
    recurrent_t = t.transpose(recurrent_kernel)

    def step(carry, inputs):
        dh_next, _, _ = carry
        dh_out, per_dh_t, z_t = inputs
        dh = dh_out + dh_next
        dhu = t.concat([dh, dh, dh], -1) * per_dh_t
        return t.matmul(dhu, recurrent_t) + dh * z_t, dhu, dh

    zeros = t.zeros_like(h0)
    dh_prev, dhu, dh = t.scan(step, (dhs, per_dh, z), reverse=True,
                              initializer=(zeros, t.zeros_like(t.concat([h0, h0, h0], -1)), zeros))
    dzx = t.concat([dh, dh, dh], -1) * t.concat([d_update, d_reset, d_candidate], -1)
    return dzx, dhu, dh_prev[0]


def gru_recurrence(z_x, h0, recurrent_kernel, recurrent_bias):
    """Every step's ``h`` (time first) of a ``reset_after`` GRU, given each step's input projection ``z_x``.

    Forward and backward are whole-sequence loops with a hand-written
    gradient, as :func:`lm_app.layers.lstm.lstm_recurrence`'s: lm_app's native
    kernels on a CPU (each core runs the whole sequence for its share of the
    batch), else the XLA loops above, in two half-batches on a multi-core CPU.
    """
    t = tf()
    kernels = native.ops()
    if kernels is not None:
        return _recurrence(z_x, h0, recurrent_kernel, recurrent_bias,
                           (kernels.lm_app_gru_forward, kernels.lm_app_gru_backward))
    halves = cpu_halves(z_x.shape[1])
    if halves:
        return t.concat([_recurrence(z, h, recurrent_kernel, recurrent_bias)
                         for z, h in zip(t.split(z_x, halves, axis=1), t.split(h0, halves))], 1)
    return _recurrence(z_x, h0, recurrent_kernel, recurrent_bias)


def _recurrence(z_x, h0, recurrent_kernel, recurrent_bias, loops=None):
    """The recurrence with its hand-written gradient; ``loops`` is ``(forward, backward)``, XLA's by default."""
    t = tf()
    forward, backward = loops or (xla(_forward), xla(_backward))

    @t.custom_gradient
    def run(z_x, h0, recurrent_kernel, recurrent_bias):
        # stop_gradient: an eager tape must not try to differentiate the loop itself.
        hs, gates = forward(*map(t.stop_gradient, (z_x, h0, recurrent_kernel, recurrent_bias)))

        def grad(dhs):
            dzx, dhu, dh0 = backward(t.zeros_like(hs) if dhs is None else dhs, hs, gates, h0, recurrent_kernel)
            # dU = sum_t h_{t-1}^T dhu_t: one large matmul over all steps, where the CPU runs near its peak.
            units = t.shape(h0)[-1]
            h_prev = t.reshape(t.concat([h0[None], hs[:-1]], 0), [-1, units])
            flat = t.reshape(dhu, [-1, 3 * units])
            return dzx, dh0, t.matmul(h_prev, flat, transpose_a=True), t.reduce_sum(flat, 0)

        return hs, grad

    return run(z_x, h0, recurrent_kernel, recurrent_bias)


@keras.saving.register_keras_serializable(package="lm_app")
class GRU(FusedRNN):
    """A whole-sequence GRU on :class:`GRUCell`, with faster paths for unmasked input (:mod:`lm_app.layers.fused`).

    In training with ``reset_after``, :func:`gru_recurrence`; in inference,
    and with the reset before the product, a plain ``tf.scan`` over
    :func:`gru_step` that exports and converts anywhere.

    Args:
        units, reset_after, dropout, recurrent_dropout, seed: as for :class:`GRUCell`.
        return_sequences, return_state, fused, time_major: as for
            :class:`~lm_app.layers.fused.FusedRNN`; the state is ``[h]``.
    """

    def __init__(self, units, reset_after=True, dropout=0.0, recurrent_dropout=0.0, seed=None,
                 return_sequences=False, return_state=False, fused=True, time_major=False, **kwargs):
        cell = GRUCell(units, reset_after=reset_after, dropout=dropout, recurrent_dropout=recurrent_dropout,
                       seed=seed, name="cell")
        super().__init__(cell, return_sequences, return_state, fused, time_major, **kwargs)

    def _fast(self, x, initial_state, training):
        t = tf()
        cell = self.cell
        if initial_state is None:
            h0 = self._zeros(x)
        else:
            h0 = initial_state[0] if isinstance(initial_state, (list, tuple)) else initial_state
        x = self._dropped(x, h0, training)
        input_bias, recurrent_bias = (cell.bias[0], cell.bias[1]) if cell.reset_after else (cell.bias, None)
        z_x = project(x, cell.kernel, input_bias, training)  # every step's input projection at once
        recurrent = t.convert_to_tensor(cell.recurrent_kernel)
        if training and cell.reset_after:
            hs = gru_recurrence(z_x, t.convert_to_tensor(h0), recurrent, t.convert_to_tensor(recurrent_bias))
        else:
            hs = self._scan(z_x, h0, recurrent, recurrent_bias)
        return hs, [hs[-1]]

    def _scan(self, z_x, h0, recurrent, recurrent_bias):
        t = tf()
        units = self.units

        def step(h, z_t):
            if recurrent_bias is not None:
                return gru_step(z_t, t.matmul(h, recurrent) + recurrent_bias, h)[0]
            return gru_step(z_t, t.matmul(h, recurrent[:, :2 * units]), h,
                            lambda r: t.matmul(r * h, recurrent[:, 2 * units:]))[0]

        return t.scan(step, z_x, initializer=h0)

    def get_config(self):
        return {**super().get_config(), "reset_after": self.cell.reset_after}

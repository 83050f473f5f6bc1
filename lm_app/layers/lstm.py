"""Long short-term memory (Hochreiter & Schmidhuber 1997), with optional peepholes.

    i_t = sigmoid(x_t W_i + h_{t-1} U_i + b_i + p_i * c_{t-1})    input gate
    f_t = sigmoid(x_t W_f + h_{t-1} U_f + b_f + p_f * c_{t-1})    forget gate
    g_t = tanh(x_t W_c + h_{t-1} U_c + b_c)                        candidate
    c_t = f_t * c_{t-1} + i_t * g_t                                cell (the CEC)
    o_t = sigmoid(x_t W_o + h_{t-1} U_o + b_o + p_o * c_t)         output gate
    h_t = o_t * tanh(c_t)

The cell state is the constant error carousel: ``dc_{t-1} = f_t * dc_t`` has
no weight matrix and no squashing on its path, so while the forget gate stays
near 1 the error flows back over many steps without vanishing, unlike the
simple RNN's ``U^T diag(1 - h_t^2)`` per step (``rnn.py``).

The peepholes ``p_*`` (Gers & Schmidhuber 2000) are diagonal, one weight per
unit, and start at zero, so a peephole cell starts out as the plain one: they
let the gates time their opening on the cell content itself, which ``h``
hides behind ``o_t``.  ``forget_bias`` starts the forget gate open (Jozefowicz
et al. 2015), so that early in training the carousel remembers.

Weights are laid out as ``keras.layers.LSTMCell`` lays them out: ``kernel``
(input_dim, 4*units), ``recurrent_kernel`` (units, 4*units), ``bias``
(4*units), gates in the order i, f, c, o, so they copy across directly.  All
four gates come out of one matmul for the input and one for the state.
"""
import keras
from keras import ops

from .. import native
from .dropout import DropoutMasks
from .fused import FusedRNN, cpu_halves
from .fused import tf as _tf
from .fused import xla as _xla
from .projection import project


@keras.saving.register_keras_serializable(package="lm_app")
class LSTMCell(keras.layers.Layer, DropoutMasks):
    """One step of an LSTM, for use inside :class:`lm_app.layers.RNN`; state is ``[h, c]``.

    Args:
        units: size of the hidden and the cell state.
        peephole: add the diagonal peephole weights ``peephole_i``,
            ``peephole_f`` (which see ``c_{t-1}``) and ``peephole_o`` (which
            sees ``c_t``).
        forget_bias: initial value of the forget gate's bias (1.0, as in
            Keras' ``unit_forget_bias``; 0 gives an all-zero bias).
        dropout: fraction of the input dropped, one mask per sequence shared
            by the four gates (Keras' fused ``implementation=2`` does the same),
            so the gates keep one matmul.
        recurrent_dropout: the same for ``h_{t-1}``; ``c`` is never dropped,
            which would break the carousel.
        seed: seed of the dropout masks.
    """

    def __init__(self, units, peephole=False, forget_bias=1.0, dropout=0.0,
                 recurrent_dropout=0.0, seed=None, **kwargs):
        if units <= 0:
            raise ValueError(f"units must be positive, got {units}")
        super().__init__(**kwargs)
        self.units = units
        self.peephole = bool(peephole)
        self.forget_bias = float(forget_bias)
        self.dropout = float(dropout)
        self.recurrent_dropout = float(recurrent_dropout)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.state_size = [units, units]
        self.output_size = units

    def build(self, input_shape):
        units = self.units

        def bias_initializer(shape, dtype=None):
            # Zeros everywhere except the forget gate's slice.
            return ops.concatenate([
                ops.zeros((units,), dtype=dtype),
                ops.full((units,), self.forget_bias, dtype=dtype),
                ops.zeros((2 * units,), dtype=dtype),
            ])

        self.kernel = self.add_weight(
            shape=(input_shape[-1], 4 * units), name="kernel", initializer="glorot_uniform")
        self.recurrent_kernel = self.add_weight(
            shape=(units, 4 * units), name="recurrent_kernel", initializer="orthogonal")
        self.bias = self.add_weight(shape=(4 * units,), name="bias", initializer=bias_initializer)
        if self.peephole:
            self.peephole_i = self.add_weight(shape=(units,), name="peephole_i", initializer="zeros")
            self.peephole_f = self.add_weight(shape=(units,), name="peephole_f", initializer="zeros")
            self.peephole_o = self.add_weight(shape=(units,), name="peephole_o", initializer="zeros")

    def call(self, inputs, states, training=False):
        h_prev, c_prev = states[0], states[1]
        if training and self.dropout > 0:
            inputs = inputs * self.dropout_mask()
        if training and self.recurrent_dropout > 0:
            h_prev = h_prev * self.recurrent_dropout_mask()
        # Same order of additions as Keras, so that the sums round the same way.
        z = ops.matmul(inputs, self.kernel)
        z = ops.add(z, ops.matmul(h_prev, self.recurrent_kernel))
        z = ops.add(z, self.bias)
        h, c, _ = lstm_step(z, c_prev, self.peepholes())
        return h, [h, c]

    def peepholes(self):
        """``(p_i, p_f, p_o)`` for :func:`lstm_step`, or None without peepholes."""
        return (self.peephole_i, self.peephole_f, self.peephole_o) if self.peephole else None

    def get_initial_state(self, batch_size=None):
        return [ops.zeros((batch_size, self.units), dtype=self.compute_dtype) for _ in range(2)]

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "peephole": self.peephole,
            "forget_bias": self.forget_bias,
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "seed": self.seed,
        }


def lstm_step(z, c_prev, peepholes=None):
    """``(h_t, c_t, (i, f, g, o))`` from the pre-activations ``z = x_t W + h_{t-1} U + b``: the module's equations.

    The one Python copy of them: the cell, the training loop and the
    inference scan all step through here (the native kernel is the other,
    tested equal).  ``peepholes`` is ``(p_i, p_f, p_o)`` or None.
    """
    z_i, z_f, z_c, z_o = ops.split(z, 4, axis=-1)
    if peepholes is not None:
        p_i, p_f, p_o = peepholes
        z_i = z_i + p_i * c_prev
        z_f = z_f + p_f * c_prev
    i, f, g = ops.sigmoid(z_i), ops.sigmoid(z_f), ops.tanh(z_c)
    c = f * c_prev + i * g
    if peepholes is not None:
        z_o = z_o + p_o * c
    o = ops.sigmoid(z_o)
    return o * ops.tanh(c), c, (i, f, g, o)


def _forward(z_x, h0, c0, recurrent_kernel):
    """Every step's ``h``, ``c`` and activated gates ``[i, f, g, o]``, time first."""
    tf = _tf()

    def step(carry, z_t):
        h, c, _ = carry
        h, c, gates = lstm_step(z_t + tf.matmul(h, recurrent_kernel), c)
        return h, c, tf.concat(gates, -1)

    return tf.scan(step, z_x, initializer=(h0, c0, tf.zeros_like(z_x[0])))


def _backward(dhs, dc_last, hs, cs, gates, h0, c0, recurrent_kernel):
    """Backpropagation through time, written out: the gradients of ``_forward``'s inputs.

    Of the gate derivatives only ``dh`` and ``dc`` depend on the step before;
    every other factor is known from the forward pass, so it is computed for
    all steps at once before the loop, which keeps each step to two
    multiply-adds, one product and ``dz_t U^T``.  The weight gradient
    ``dU = sum_t h_{t-1}^T dz_t`` is one large matmul over all steps after the
    loop (:func:`_recurrent_kernel_gradient`), instead of a small one per step.
    """
    tf = _tf()
    c_prev = tf.concat([c0[None], cs[:-1]], 0)
    i, f, g, o = tf.split(gates, 4, axis=-1)
    tanh_c = tf.tanh(cs)
    dc_per_dh = o * (1 - tanh_c * tanh_c)
    dz_per_dc_dh = tf.concat([g * i * (1 - i), c_prev * f * (1 - f), i * (1 - g * g),
                              tanh_c * o * (1 - o)], -1)  # the last quarter multiplies dh, the rest dc
    recurrent_t = tf.transpose(recurrent_kernel)

    def step(carry, inputs):
        dh_next, dc_next, _ = carry
        dh_out, dc_dh, dz_dcdh, f_t = inputs
        dh = dh_out + dh_next
        dc = dc_next + dh * dc_dh
        dz = tf.concat([dc, dc, dc, dh], -1) * dz_dcdh
        return tf.matmul(dz, recurrent_t), dc * f_t, dz  # dc flows on through f: the carousel

    dh0, dc0, dz = tf.scan(step, (dhs, dc_per_dh, dz_per_dc_dh, f), reverse=True,
                           initializer=(tf.zeros_like(h0), dc_last, tf.zeros_like(gates[0])))
    return dz, dh0[0], dc0[0], _recurrent_kernel_gradient(dz, hs, h0)


def lstm_recurrence(z_x, h0, c0, recurrent_kernel):
    """``(hs, c_T)`` of an LSTM without peepholes, given each step's input projection ``z_x`` (time first).

    Forward and backward run as whole-sequence loops with a hand-written
    gradient (``_backward``), which keeps what the forward pass computed (the
    gates) instead of letting autodiff rebuild it op by op.  On a CPU the loops
    are lm_app's native kernels (:mod:`lm_app.native`): rows never interact,
    so each core runs the whole sequence for its share of the batch, at the
    core's full matmul speed.  The XLA loops below remain for GPUs and for
    machines where the kernels cannot be built (``bench/`` times both).
    """
    tf = _tf()
    kernels = native.ops()
    if kernels is not None:
        return _recurrence(z_x, h0, c0, recurrent_kernel, _native_loops(kernels))
    halves = cpu_halves(z_x.shape[1])
    if halves:
        parts = [_recurrence(*args, recurrent_kernel) for args in zip(
            tf.split(z_x, halves, axis=1), tf.split(h0, halves), tf.split(c0, halves))]
        return tf.concat([hs for hs, _ in parts], 1), tf.concat([c for _, c in parts], 0)
    return _recurrence(z_x, h0, c0, recurrent_kernel)


def _recurrent_kernel_gradient(dz, hs, h0):
    """``dU = sum_t h_{t-1}^T dz_t``: one large matmul over all steps, where the CPU runs near its peak."""
    tf = _tf()
    h_prev = tf.concat([h0[None], hs[:-1]], 0)
    units = tf.shape(h0)[-1]
    return tf.matmul(tf.reshape(h_prev, [-1, units]), tf.reshape(dz, [-1, 4 * units]), transpose_a=True)


def _native_loops(kernels):
    """``(forward, backward)`` with ``_forward``'s and ``_backward``'s signatures, on lm_app's native kernels."""
    def backward(dhs, dc_last, hs, cs, gates, h0, c0, recurrent_kernel):
        dz, dh0, dc0 = kernels.lm_app_lstm_backward(dhs, dc_last, cs, gates, c0, recurrent_kernel)
        return dz, dh0, dc0, _recurrent_kernel_gradient(dz, hs, h0)

    return kernels.lm_app_lstm_forward, backward


def _recurrence(z_x, h0, c0, recurrent_kernel, loops=None):
    """The recurrence with its hand-written gradient; ``loops`` is ``(forward, backward)``, XLA's by default."""
    tf = _tf()
    forward, backward = loops or (_xla(_forward), _xla(_backward))

    @tf.custom_gradient
    def run(z_x, h0, c0, recurrent_kernel):
        # stop_gradient: an eager tape must not try to differentiate the loop itself.
        hs, cs, gates = forward(*map(tf.stop_gradient, (z_x, h0, c0, recurrent_kernel)))

        def grad(dhs, dc_last):
            dhs = tf.zeros_like(hs) if dhs is None else dhs
            dc_last = tf.zeros_like(c0) if dc_last is None else dc_last
            return backward(dhs, dc_last, hs, cs, gates, h0, c0, recurrent_kernel)

        return (hs, cs[-1]), grad

    return run(z_x, h0, c0, recurrent_kernel)


@keras.saving.register_keras_serializable(package="lm_app")
class LSTM(FusedRNN):
    """A whole-sequence LSTM on :class:`LSTMCell`, with faster paths for unmasked input.

    The readable path is ``RNN(LSTMCell)`` (:class:`lm_app.layers.RNN`): one step at a time,
    with masks and recurrent dropout.  Where neither is needed (a language
    model reading an unpadded stream), the same weights run leaner loops
    (:mod:`lm_app.layers.fused`).  In training that loop
    is :func:`lstm_recurrence` (native kernels on a CPU, else XLA; hand-written
    BPTT); in inference, and with peepholes, a plain ``tf.scan`` that exports
    and converts anywhere.
    TensorFlow's fused ``BlockLSTM`` was slower here (its CPU backward pass is
    slow, and its V2 has V1's gradient registered, with the wrong gate order,
    in TF 2.21).  Every path computes the cell's equations with the cell's
    weights; tests compare outputs and gradients.

    Args:
        units, peephole, forget_bias, dropout, recurrent_dropout, seed: as for
            :class:`LSTMCell` (input dropout uses one mask per sequence on every path).
        return_sequences, return_state, fused, time_major: as for
            :class:`~lm_app.layers.fused.FusedRNN`; the state is ``[h, c]``.
    """

    def __init__(self, units, peephole=False, forget_bias=1.0, dropout=0.0, recurrent_dropout=0.0,
                 seed=None, return_sequences=False, return_state=False, fused=True, time_major=False,
                 **kwargs):
        cell = LSTMCell(units, peephole=peephole, forget_bias=forget_bias, dropout=dropout,
                        recurrent_dropout=recurrent_dropout, seed=seed, name="cell")
        super().__init__(cell, return_sequences, return_state, fused, time_major, **kwargs)

    def _fast(self, x, initial_state, training):
        tf = _tf()
        cell = self.cell
        if initial_state is None:
            h0 = c0 = self._zeros(x)
        else:
            h0, c0 = initial_state
        x = self._dropped(x, h0, training)
        z_x = project(x, cell.kernel, cell.bias, training)  # every step's input projection at once
        recurrent = tf.convert_to_tensor(cell.recurrent_kernel)
        if training and not cell.peephole:
            hs, c_last = lstm_recurrence(z_x, tf.convert_to_tensor(h0), tf.convert_to_tensor(c0),
                                         recurrent)
        else:
            hs, c_last = self._scan(z_x, h0, c0, recurrent)
        return hs, [hs[-1], c_last]

    def _scan(self, z_x, h0, c0, recurrent):
        tf = _tf()
        peepholes = self.cell.peepholes()

        def step(carry, z_t):
            h, c = carry
            h, c, _ = lstm_step(z_t + tf.matmul(h, recurrent), c, peepholes)
            return h, c

        hs, cs = tf.scan(step, z_x, initializer=(h0, c0))
        return hs, cs[-1]

    def get_config(self):
        return {**super().get_config(), "peephole": self.cell.peephole, "forget_bias": self.cell.forget_bias}

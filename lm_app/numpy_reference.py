"""The notes' recurrent cells by hand in plain NumPy: forward passes and backpropagation through time.

No autodiff: every derivative is written out, as the notes teach it.  The
TensorFlow cells in ``lm_app.layers`` are tested against these functions
(``tests/layers``), and the NumPy examples (``examples/*_numpy.py``) train with
them.  The loss is ``L = sum(H * G)`` over all the outputs ``H`` (batch, time,
units), so ``dL/dH = G``: a caller with any loss passes its ``dL/dH`` as ``G``.

Simple RNN (``act`` is tanh, or the notes' sigmoid in the binary-addition program)::

    h_t = act(a_t),  a_t = x_t W + h_{t-1} U + b
    da_t = (G_t + dh_t) * act'(a_t),   dh_{t-1} = da_t U^T
    dW = sum_t x_t^T da_t,  dU = sum_t h_{t-1}^T da_t,  db = sum_t da_t

LSTM with peepholes (gates i, f, g, o)::

    i_t = sigmoid(x_t W_i + h_{t-1} U_i + b_i + p_i * c_{t-1})
    f_t = sigmoid(x_t W_f + h_{t-1} U_f + b_f + p_f * c_{t-1})
    g_t = tanh(x_t W_g + h_{t-1} U_g + b_g)
    c_t = f_t * c_{t-1} + i_t * g_t
    o_t = sigmoid(x_t W_o + h_{t-1} U_o + b_o + p_o * c_t)
    h_t = o_t * tanh(c_t)
    dc_{t-1} = dc_t * f_t + (peephole terms)       the constant error carousel

GRU (``reset_after``, Keras' and cuDNN's default; gates z, r, n)::

    z_t = sigmoid(x_t W_z + b_z + h_{t-1} U_z + b'_z)
    r_t = sigmoid(x_t W_r + b_r + h_{t-1} U_r + b'_r)
    n_t = tanh(x_t W_n + b_n + r_t * (h_{t-1} U_n + b'_n))
    h_t = z_t * h_{t-1} + (1 - z_t) * n_t
    dh_{t-1} = dh_t * z_t + (gate terms) U^T

Shapes: ``x`` (batch, time, input_dim), ``W`` (input_dim, k*units),
``U`` (units, k*units), states (batch, units); ``b`` is (k*units,), except the
GRU's (2, 3*units): input bias, recurrent bias.  Gates are laid out as Keras
lays them out, so a Keras cell's weights plug in directly.
"""
import numpy as np


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


ACTIVATIONS = {  # the function, and its derivative written in terms of its output
    "tanh": (np.tanh, lambda h: 1.0 - h ** 2),
    "sigmoid": (sigmoid, lambda h: h * (1.0 - h)),
}


# --- Simple RNN: h_t = act(x_t W + h_{t-1} U + b) ------------------------------------------

def rnn_forward(x, h0, W, U, b, activation="tanh"):
    """All hidden states, (batch, time, units)."""
    act = ACTIVATIONS[activation][0]
    steps = x.shape[1]
    hs = np.zeros((x.shape[0], steps, h0.shape[1]))
    h = h0
    for t in range(steps):
        h = act(x[:, t] @ W + h @ U + b)
        hs[:, t] = h
    return hs


def rnn_backward(x, h0, W, U, b, G, activation="tanh", hs=None):
    """Gradients of ``sum(H * G)``: dict of dx, dW, dU, db, dh0.

    ``hs``: the states ``rnn_forward`` returned, if the caller has them already.
    """
    derivative = ACTIVATIONS[activation][1]
    if hs is None:
        hs = rnn_forward(x, h0, W, U, b, activation)
    dx = np.zeros_like(x)
    dW, dU, db = np.zeros_like(W), np.zeros_like(U), np.zeros_like(b)
    dh_next = np.zeros_like(h0)  # dL/dh_t arriving from step t+1
    for t in reversed(range(x.shape[1])):
        h = hs[:, t]
        h_prev = hs[:, t - 1] if t > 0 else h0
        dh = G[:, t] + dh_next
        da = dh * derivative(h)  # through the squashing
        dW += x[:, t].T @ da
        dU += h_prev.T @ da
        db += da.sum(axis=0)
        dx[:, t] = da @ W.T
        dh_next = da @ U.T
    return {"x": dx, "W": dW, "U": dU, "b": db, "h0": dh_next}


# --- Peephole LSTM, gates in the order i, f, c, o (Keras' layout) ---------------------------

def lstm_forward(x, h0, c0, W, U, b, p_i, p_f, p_o):
    """Outputs (batch, time, units), final h, final c and the per-step cache for BPTT."""
    n = h0.shape[1]
    h, c = h0, c0
    hs, cache = [], []
    for t in range(x.shape[1]):
        a = x[:, t] @ W + h @ U + b
        a_i = a[:, :n] + p_i * c
        a_f = a[:, n:2 * n] + p_f * c
        a_g = a[:, 2 * n:3 * n]
        i, f, g = sigmoid(a_i), sigmoid(a_f), np.tanh(a_g)
        c_new = f * c + i * g
        o = sigmoid(a[:, 3 * n:] + p_o * c_new)
        h_new = o * np.tanh(c_new)
        cache.append((h, c, i, f, g, o, c_new))
        h, c = h_new, c_new
        hs.append(h)
    return np.stack(hs, axis=1), h, c, cache


def lstm_backward(x, h0, c0, W, U, b, p_i, p_f, p_o, G):
    """Gradients of ``sum(H * G)``: dict of dx, dW, dU, db, dp_i, dp_f, dp_o, dh0, dc0."""
    _, _, _, cache = lstm_forward(x, h0, c0, W, U, b, p_i, p_f, p_o)
    dx = np.zeros_like(x)
    dW, dU, db = np.zeros_like(W), np.zeros_like(U), np.zeros_like(b)
    dp_i, dp_f, dp_o = np.zeros_like(p_i), np.zeros_like(p_f), np.zeros_like(p_o)
    dh_next, dc_next = np.zeros_like(h0), np.zeros_like(c0)
    for t in reversed(range(x.shape[1])):
        h_prev, c_prev, i, f, g, o, c = cache[t]
        dh = G[:, t] + dh_next
        tanh_c = np.tanh(c)
        # h = o * tanh(c)
        da_o = dh * tanh_c * o * (1.0 - o)
        # c feeds h directly, and the output gate through its peephole.
        dc = dc_next + dh * o * (1.0 - tanh_c ** 2) + da_o * p_o
        dp_o += (da_o * c).sum(axis=0)
        # c = f * c_prev + i * g
        da_i = dc * g * i * (1.0 - i)
        da_f = dc * c_prev * f * (1.0 - f)
        da_g = dc * i * (1.0 - g ** 2)
        dp_i += (da_i * c_prev).sum(axis=0)
        dp_f += (da_f * c_prev).sum(axis=0)
        # The carousel: c_prev reaches the loss through f, and through the two peepholes.
        dc_next = dc * f + da_i * p_i + da_f * p_f
        da = np.concatenate([da_i, da_f, da_g, da_o], axis=1)
        dW += x[:, t].T @ da
        dU += h_prev.T @ da
        db += da.sum(axis=0)
        dx[:, t] = da @ W.T
        dh_next = da @ U.T
    return {"x": dx, "W": dW, "U": dU, "b": db, "p_i": dp_i, "p_f": dp_f, "p_o": dp_o,
            "h0": dh_next, "c0": dc_next}


# --- GRU, reset after the recurrent matmul, gates in the order z, r, n (Keras' layout) ---------

def gru_forward(x, h0, W, U, b):
    """Outputs (batch, time, units) and the per-step cache for BPTT."""
    n = h0.shape[1]
    h = h0
    hs, cache = [], []
    for t in range(x.shape[1]):
        a_x = x[:, t] @ W + b[0]
        a_h = h @ U + b[1]
        z = sigmoid(a_x[:, :n] + a_h[:, :n])
        r = sigmoid(a_x[:, n:2 * n] + a_h[:, n:2 * n])
        cand = np.tanh(a_x[:, 2 * n:] + r * a_h[:, 2 * n:])
        cache.append((h, z, r, cand, a_h[:, 2 * n:]))
        h = z * h + (1.0 - z) * cand
        hs.append(h)
    return np.stack(hs, axis=1), cache


def gru_backward(x, h0, W, U, b, G):
    """Gradients of ``sum(H * G)``: dict of dx, dW, dU, db, dh0."""
    _, cache = gru_forward(x, h0, W, U, b)
    dx = np.zeros_like(x)
    dW, dU, db = np.zeros_like(W), np.zeros_like(U), np.zeros_like(b)
    dh_next = np.zeros_like(h0)
    for t in reversed(range(x.shape[1])):
        h_prev, z, r, cand, a_hn = cache[t]
        dh = G[:, t] + dh_next
        # h = z * h_prev + (1 - z) * cand
        da_z = dh * (h_prev - cand) * z * (1.0 - z)
        da_n = dh * (1.0 - z) * (1.0 - cand ** 2)
        # The reset gate scales the recurrent part of the candidate only.
        da_r = da_n * a_hn * r * (1.0 - r)
        da_x = np.concatenate([da_z, da_r, da_n], axis=1)
        da_h = np.concatenate([da_z, da_r, da_n * r], axis=1)
        dW += x[:, t].T @ da_x
        dU += h_prev.T @ da_h
        db[0] += da_x.sum(axis=0)
        db[1] += da_h.sum(axis=0)
        dx[:, t] = da_x @ W.T
        # The update gate's straight path back, plus the three gates' matmul.
        dh_next = dh * z + da_h @ U.T
    return {"x": dx, "W": dW, "U": dU, "b": db, "h0": dh_next}

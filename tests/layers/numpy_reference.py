"""Forward pass and backpropagation through time, by hand, in plain NumPy.

The reference the TensorFlow cells are checked against: no autodiff, every
derivative written out as in the notes.  The loss is ``L = sum(H * G)`` over
all the outputs ``H`` (batch, time, units), so ``dL/dH = G``.

Shapes: ``x`` (batch, time, input_dim), ``W`` (input_dim, k*units),
``U`` (units, k*units), ``b`` (k*units,), states (batch, units).
"""
import numpy as np


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


# --- Simple RNN: h_t = tanh(x_t W + h_{t-1} U + b) -----------------------------------------

def rnn_forward(x, h0, W, U, b):
    """All hidden states, (batch, time, units)."""
    steps = x.shape[1]
    hs = np.zeros((x.shape[0], steps, h0.shape[1]))
    h = h0
    for t in range(steps):
        h = np.tanh(x[:, t] @ W + h @ U + b)
        hs[:, t] = h
    return hs


def rnn_backward(x, h0, W, U, b, G):
    """Gradients of ``sum(H * G)``: dict of dx, dW, dU, db, dh0."""
    hs = rnn_forward(x, h0, W, U, b)
    dx = np.zeros_like(x)
    dW, dU, db = np.zeros_like(W), np.zeros_like(U), np.zeros_like(b)
    dh_next = np.zeros_like(h0)  # dL/dh_t arriving from step t+1
    for t in reversed(range(x.shape[1])):
        h = hs[:, t]
        h_prev = hs[:, t - 1] if t > 0 else h0
        dh = G[:, t] + dh_next
        da = dh * (1.0 - h ** 2)  # through tanh
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

"""The notes' third program as written there: a NumPy RNN learns a noisy sine wave by hand-written BPTT, then runs free.

Each input is the last ``maxlen`` = 2 values of the noisy wave, the target the
next one; 5 tanh hidden units, a linear output, squared error, plain SGD one
window at a time.  The forward pass and backpropagation through time are
``lm_app.numpy_reference``'s (no autodiff); only the output layer is written out
here.  The windows are split 80/20 in time order, the test loss printed after
every epoch; then the model is fed its own predictions for 200 steps past the
data, and that free run is plotted against the true (noise-free) wave.  Two
values fix the wave's frequency only up to the noise, so the free run keeps
oscillating but drifts in phase: its error over the first period is small,
over 200 steps it grows with the drift.
``sine_wave.py`` is the same exercise on our Keras cells.

    python examples/sine_wave_numpy.py [--epochs 30] [--seed 0] [--out sine_wave_numpy.png]
"""
import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, uninstalled

from lm_app.numpy_reference import rnn_backward, rnn_forward  # noqa: E402
from lm_app.plot import free_run_png  # noqa: E402

STEP = 0.3  # radians between samples: about 21 samples per period
PERIOD = int(round(2 * np.pi / STEP))


def noisy_wave(samples, noise, rng):
    """The true wave and the observed one, sin plus Gaussian noise."""
    clean = np.sin(STEP * np.arange(samples))
    return clean, clean + noise * rng.normal(size=samples)


def windows(series, maxlen):
    """Every (maxlen values, next value) pair: (N, maxlen, 1), (N, 1)."""
    idx = np.arange(len(series) - maxlen)[:, None] + np.arange(maxlen)
    return series[idx][..., None], series[maxlen:][:, None]


def init_weights(rng, hidden=5):
    """Small random weights (std 1/sqrt(fan-in)), zero biases."""
    return {"W": rng.normal(size=(1, hidden)), "U": rng.normal(size=(hidden, hidden)) / np.sqrt(hidden),
            "b": np.zeros(hidden), "V": rng.normal(size=(hidden, 1)) / np.sqrt(hidden),
            "c": np.zeros(1)}


def predict(weights, x):
    """The next value after each window: the last hidden state through the linear output."""
    hs = rnn_forward(x, np.zeros((len(x), len(weights["b"]))), weights["W"], weights["U"],
                     weights["b"])
    return hs, hs[:, -1] @ weights["V"] + weights["c"]


def loss(weights, x, y):
    """Mean squared error over the windows, halved as in the gradient."""
    return 0.5 * float(np.mean((predict(weights, x)[1] - y) ** 2))


def sgd_step(weights, x, y, learning_rate):
    """One window, one update, by hand-written BPTT."""
    hs, y_hat = predict(weights, x)
    d_y = y_hat - y  # dL/dy_hat for L = (y_hat - y)^2 / 2
    G = np.zeros_like(hs)
    G[:, -1] = d_y @ weights["V"].T  # only the last step's state reaches the output
    grads = rnn_backward(x, np.zeros((len(x), hs.shape[2])), weights["W"], weights["U"],
                         weights["b"], G, hs=hs)
    weights["V"] -= learning_rate * hs[:, -1].T @ d_y
    weights["c"] -= learning_rate * d_y.sum(axis=0)
    for name in ("W", "U", "b"):
        weights[name] -= learning_rate * grads[name]


def train(samples=1000, maxlen=2, hidden=5, epochs=30, learning_rate=0.02, noise=0.02, seed=0,
          report=print):
    """Returns the weights, the observed series, the clean one and each epoch's test loss."""
    rng = np.random.default_rng(seed)
    clean, observed = noisy_wave(samples, noise, rng)
    x, y = windows(observed, maxlen)
    split = int(0.8 * len(x))  # in time order: the test windows come after the training ones
    weights = init_weights(rng, hidden)
    test_losses = []
    for epoch in range(1, epochs + 1):
        for i in rng.permutation(split):
            sgd_step(weights, x[i:i + 1], y[i:i + 1], learning_rate)
        test_losses.append(loss(weights, x[split:], y[split:]))
        if report:
            report(f"epoch {epoch}: train loss {loss(weights, x[:split], y[:split]):.5f}, "
                   f"test loss {test_losses[-1]:.5f}")
    return weights, observed, clean, test_losses


def free_run(weights, seed_window, steps=200):
    """Start from ``seed_window`` (the last observed values), then feed predictions back."""
    history = list(seed_window)
    for _ in range(steps):
        window = np.asarray(history[-len(seed_window):])[None, :, None]
        history.append(float(predict(weights, window)[1][0, 0]))
    return np.asarray(history[len(seed_window):])


def plot(observed, predicted, truth, path):
    """PNG of the data's tail, the free run and the true wave, written atomically."""
    free_run_png(path, predicted, truth, "NumPy RNN fed its own predictions", observed[-100:])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=1000, help="(default: %(default)s)")
    p.add_argument("--maxlen", type=int, default=2, help="past values seen (default: %(default)s)")
    p.add_argument("--hidden", type=int, default=5, help="tanh units (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=30, help="(default: %(default)s)")
    p.add_argument("--learning-rate", type=float, default=0.02, help="(default: %(default)s)")
    p.add_argument("--noise", type=float, default=0.02, help="noise's std (default: %(default)s)")
    p.add_argument("--steps", type=int, default=200, help="free-run steps (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="(default: %(default)s)")
    p.add_argument("--out", default="sine_wave_numpy.png", help="PNG to write (default: %(default)s)")
    args = p.parse_args(argv)
    weights, observed, _, _ = train(args.samples, args.maxlen, args.hidden, args.epochs,
                                    args.learning_rate, args.noise, args.seed)
    predicted = free_run(weights, observed[-args.maxlen:], args.steps)
    truth = np.sin(STEP * np.arange(args.samples, args.samples + args.steps))
    error = np.abs(predicted - truth)
    plot(observed, predicted, truth, args.out)
    print(f"free-run MAE over {args.steps} steps: {error.mean():.4f}, over the first period "
          f"({PERIOD} steps): {error[:PERIOD].mean():.4f}; plot in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

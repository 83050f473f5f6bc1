"""The notes' second exercise: predict a sine wave's next value, then let the model run free.

Trained on windows of past values -> the next value, the model is then fed its
own predictions for 200 steps.  Errors compound in that free run, so its mean
absolute error is a far stricter score than the one-step training loss; the
plot shows where (and whether) the prediction drifts off the true wave.

    python examples/sine_wave.py [--cell lstm] [--units 32] [--epochs 30] [--out sine_wave.png]
"""
import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, uninstalled

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from lm_app.layers import LSTMCell, SimpleRNNCell  # noqa: E402
from lm_app.plot import free_run_png  # noqa: E402

CELLS = {"lstm": LSTMCell, "rnn": SimpleRNNCell}
STEP = 0.1  # radians between samples: about 63 samples per period


def wave(start, count):
    """``count`` samples of sin, from sample index ``start``."""
    return np.sin(STEP * np.arange(start, start + count)).astype("float32")


def windows(series, window):
    """Every (window of ``window`` values, next value) pair: (N, window, 1), (N, 1)."""
    idx = np.arange(len(series) - window)[:, None] + np.arange(window)
    return series[idx][..., None], series[window:][:, None]


def build_model(window, cell="lstm", units=32):
    inputs = keras.Input((window, 1))
    hidden = keras.layers.RNN(CELLS[cell](units))(inputs)
    return keras.Model(inputs, keras.layers.Dense(1)(hidden), name=f"sine_{cell}")


def train(cell="lstm", units=32, window=20, samples=1000, epochs=30, batch_size=32,
          learning_rate=0.01, seed=0):
    """Fit the model on the first ``samples`` values of the wave."""
    keras.utils.set_random_seed(seed)
    x, y = windows(wave(0, samples), window)
    model = build_model(window, cell, units)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="mse")
    model.fit(x, y, batch_size=batch_size, epochs=epochs, shuffle=True, verbose=0)
    return model


def free_run(model, start, steps=200):
    """Seed with the true window ending at sample ``start``, then feed predictions back.

    Returns (predictions, truth), each ``steps`` long.
    """
    window = model.input_shape[1]
    step = tf.function(lambda w: model(w, training=False))  # one graph, not 200 eager calls
    history = list(wave(start - window, window))
    for _ in range(steps):
        nxt = step(np.asarray(history[-window:], "float32")[None, :, None])
        history.append(float(nxt[0, 0]))
    return np.asarray(history[window:], "float32"), wave(start, steps)


def plot(predicted, truth, path):
    """PNG of the free run against the true wave, written atomically."""
    free_run_png(path, predicted, truth, "sine wave, fed its own predictions")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cell", choices=sorted(CELLS), default="lstm", help="(default: %(default)s)")
    p.add_argument("--units", type=int, default=32, help="(default: %(default)s)")
    p.add_argument("--window", type=int, default=20, help="past values seen (default: %(default)s)")
    p.add_argument("--samples", type=int, default=1000,
                   help="training samples of the wave (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=30, help="(default: %(default)s)")
    p.add_argument("--steps", type=int, default=200, help="free-run steps (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="(default: %(default)s)")
    p.add_argument("--out", default="sine_wave.png", help="PNG to write (default: %(default)s)")
    args = p.parse_args(argv)
    model = train(args.cell, args.units, args.window, args.samples, args.epochs, seed=args.seed)
    predicted, truth = free_run(model, args.samples, args.steps)
    mae = float(np.mean(np.abs(predicted - truth)))
    plot(predicted, truth, args.out)
    print(f"free-run MAE over {args.steps} steps: {mae:.4f}; plot in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

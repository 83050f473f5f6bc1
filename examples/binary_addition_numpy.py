"""The notes' first program as written there: a NumPy RNN learns 8-bit binary addition by hand-written BPTT.

One pair a, b < 128 per iteration, bits fed least significant first, 2 inputs
-> 16 sigmoid hidden units -> 1 sigmoid output, no biases, weights drawn with
standard deviation 1, squared error, plain SGD at learning rate 0.1.  The
forward pass and backpropagation through time are ``lm_app.numpy_reference``'s
(no autodiff anywhere); only the output layer is written out here.  Every 100
iterations it prints the loss and one prediction; at the end it scores every
one of the 16,384 pairs and plots the loss curve.  ``binary_addition.py`` is the
same exercise on our Keras cell.

    python examples/binary_addition_numpy.py [--iterations 10000] [--seed 0] [--out binary_addition_numpy.png]
"""
import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, uninstalled

from lm_app.numpy_reference import rnn_backward, rnn_forward, sigmoid  # noqa: E402
from lm_app.plot import pyplot, save_png  # noqa: E402

BITS = 8
LARGEST = 2 ** BITS
# The notes' lookup table: row n is n's 8 bits, most significant first, as they are printed.
INT2BINARY = np.unpackbits(np.arange(LARGEST, dtype=np.uint8)[:, None], axis=1)


def init_weights(seed, hidden=16):
    """W (2, hidden), U (hidden, hidden), V (hidden, 1), each entry ~ N(0, 1)."""
    rng = np.random.default_rng(seed)
    return {"W": rng.normal(size=(2, hidden)), "U": rng.normal(size=(hidden, hidden)),
            "V": rng.normal(size=(hidden, 1))}


def sequences(a, b):
    """Inputs (N, BITS, 2) and targets (N, BITS, 1), least significant bit first."""
    a, b = np.asarray(a), np.asarray(b)
    x = np.stack([INT2BINARY[a], INT2BINARY[b]], axis=-1)[:, ::-1]
    return x.astype(float), INT2BINARY[a + b][:, ::-1, None].astype(float)


def forward(weights, x):
    """Hidden states (N, BITS, hidden) and output probabilities (N, BITS, 1)."""
    W, U = weights["W"], weights["U"]
    hs = rnn_forward(x, np.zeros((len(x), U.shape[0])), W, U, np.zeros(U.shape[0]), "sigmoid")
    return hs, sigmoid(hs @ weights["V"])


def sgd_step(weights, a, b, learning_rate=0.1):
    """One pair, one update; returns the squared error and the predicted bits (MSB first)."""
    x, y = sequences([a], [b])
    hs, out = forward(weights, x)
    d_out = (out - y) * out * (1.0 - out)  # dL/d(output's pre-activation), L = sum((out - y)^2) / 2
    W, U, V = weights["W"], weights["U"], weights["V"]
    h0 = np.zeros((1, U.shape[0]))
    grads = rnn_backward(x, h0, W, U, np.zeros(U.shape[0]), d_out @ V.T, "sigmoid", hs)
    V -= learning_rate * np.einsum("nth,nto->ho", hs, d_out)
    W -= learning_rate * grads["W"]
    U -= learning_rate * grads["U"]  # no biases: the notes' network has none
    return 0.5 * float(np.sum((out - y) ** 2)), (out[0, ::-1, 0] > 0.5).astype(int)


def bits_to_int(bits_msb_first):
    return int(np.dot(bits_msb_first, 2 ** np.arange(BITS)[::-1]))


def exact_accuracy(weights, limit=LARGEST // 2):
    """Share of all pairs a, b < ``limit`` whose 8 sum bits all come out right."""
    a, b = (m.ravel() for m in np.meshgrid(np.arange(limit), np.arange(limit), indexing="ij"))
    x, y = sequences(a, b)
    _, out = forward(weights, x)
    return float(np.mean(np.all((out > 0.5) == (y > 0.5), axis=(1, 2))))


def train(iterations=10000, seed=0, learning_rate=0.1, hidden=16, report=print):
    """The notes' loop; returns the weights and every iteration's loss."""
    weights = init_weights(seed, hidden)
    rng = np.random.default_rng(seed + 1)
    losses = np.zeros(iterations)
    for j in range(iterations):
        a, b = rng.integers(LARGEST // 2, size=2)
        losses[j], pred = sgd_step(weights, a, b, learning_rate)
        if (j + 1) % 100 == 0 and report:
            report(f"iteration {j + 1}: loss {losses[j - 99:j + 1].mean():.4f}")
            report(f"Pred: {''.join(map(str, pred))}")
            report(f"True: {''.join(map(str, INT2BINARY[a + b]))}")
            report(f"{a} + {b} = {bits_to_int(pred)}")
            report("------------")
    return weights, losses


def plot(losses, path, every=100):
    """PNG of the loss, averaged over each ``every`` iterations, written atomically."""
    plt = pyplot()
    means = losses[:len(losses) // every * every].reshape(-1, every).mean(axis=1)
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.plot(np.arange(1, len(means) + 1) * every, means)
    ax.set(xlabel="iteration", ylabel=f"squared error (mean of {every})",
           title="binary addition, NumPy RNN with hand-written BPTT")
    ax.grid(alpha=0.3)
    save_png(fig, path)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--iterations", type=int, default=10000, help="(default: %(default)s)")
    p.add_argument("--learning-rate", type=float, default=0.1, help="(default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="(default: %(default)s)")
    p.add_argument("--out", default="binary_addition_numpy.png",
                   help="PNG of the loss curve (default: %(default)s)")
    args = p.parse_args(argv)
    weights, losses = train(args.iterations, args.seed, args.learning_rate)
    accuracy = exact_accuracy(weights)
    plot(losses, args.out)
    print(f"exact sums on all {(LARGEST // 2) ** 2} pairs below {LARGEST // 2}: {accuracy:.2%}; "
          f"loss curve in {args.out}")
    return 0 if accuracy == 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())

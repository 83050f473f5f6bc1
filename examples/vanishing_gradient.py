"""The vanishing gradient, shown: how much h_T still depends on h_t, k = T - t steps back, in our three cells.

Nothing is trained.  Each cell is made as ``train`` makes it (``lm_app.models.make_cell``:
Glorot input weights, orthogonal recurrent weights, zero biases but the LSTM's
forget bias of 1) and run over random N(0, 1) sequences; the Jacobian of each step's
state with respect to the previous one is taken with TensorFlow, and their
product gives ``dh_T/dh_t`` for t = T-1 ... T-100.  Its norm (the largest
singular value, the median over the sequences) is what backpropagation through
time multiplies the error by on its way back k steps.

The notes' bound: the sigmoid's derivative is at most 0.25, so through k
sigmoid steps whose weights have norm at most 1 the error shrinks at least as
0.25^k.  The simple RNN multiplies by ``U^T diag(1 - h^2)`` at every step; the
LSTM's cell state is the constant error carousel, multiplied only by the
forget gate, so its error fades far more slowly.  The GRU's straight path is
scaled by its update gate, which starts near 1/2 with zero biases, so at
initialisation it fades about as fast as the simple RNN.

    python examples/vanishing_gradient.py [--units 32] [--sequences 16] [--seed 0] [--out vanishing_gradient.png]
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

from lm_app.models import make_cell  # noqa: E402
from lm_app.plot import pyplot, save_png  # noqa: E402

ARCHS = ("rnn", "lstm", "gru")
SIGMOID_DERIVATIVE_MAX = 0.25  # sigmoid'(a) = s (1 - s) peaks at s = 1/2


def step_jacobians(cell, x):
    """Run ``cell`` over ``x`` (batch, T, features) from the zero state.

    Returns the T Jacobians d s_t / d s_{t-1}, each (batch, S, S), where the
    state s is the cell's states side by side (h, or h and c for the LSTM).
    """
    states = [tf.convert_to_tensor(s) for s in cell.get_initial_state(x.shape[0])]
    sizes = [int(s.shape[-1]) for s in states]

    @tf.function  # one graph for all the steps, instead of a retraced Jacobian per step
    def step(x_t, s):
        with tf.GradientTape() as tape:
            tape.watch(s)
            _, new = cell(x_t, list(tf.split(s, sizes, axis=-1)))
            s_next = tf.concat(new, axis=-1)
        return s_next, tape.batch_jacobian(s_next, s)

    s = tf.concat(states, axis=-1)
    jacobians = []
    for t in range(x.shape[1]):
        s, jacobian = step(x[:, t], s)
        jacobians.append(jacobian.numpy().astype("float64"))  # products reach 1e-20
    return jacobians


def gradient_norms(arch, units=32, steps=100, sequences=16, seed=0):
    """Median over the sequences of ||dh_T / dh_{T-k}||, for k = 1 ... ``steps``."""
    keras.utils.set_random_seed(seed)
    cell = make_cell(arch, units)
    x = tf.constant(np.random.default_rng(seed).normal(size=(sequences, steps, units)), "float32")
    cell.build((None, units))
    jacobians = step_jacobians(cell, x)
    # Start from dh_T/ds_T = [I 0] (h comes first in the state), then go back a step at a time.
    back = np.broadcast_to(np.eye(units, jacobians[0].shape[-1]), (sequences, units,
                                                                  jacobians[0].shape[-1]))
    norms = []
    for jacobian in reversed(jacobians):
        back = back @ jacobian  # now dh_T / ds_{t-1}
        norms.append(np.median(np.linalg.norm(back[:, :, :units], ord=2, axis=(1, 2))))
    return np.asarray(norms)


def table(norms, every=10):
    """Rows k = 1, every, 2*every, ...: each cell's norm, and the notes' bound 0.25^k."""
    ks = [1] + list(range(every, len(next(iter(norms.values()))) + 1, every))
    lines = ["   k  " + "".join(f"{arch:>12}" for arch in norms) + f"{'0.25^k':>12}"]
    for k in ks:
        lines.append(f"{k:4d}  " + "".join(f"{norms[arch][k - 1]:12.3e}" for arch in norms)
                     + f"{SIGMOID_DERIVATIVE_MAX ** k:12.3e}")
    return "\n".join(lines)


def plot(norms, path):
    """PNG of the norms against k on a log scale, with the 0.25^k bound, written atomically."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    for arch, values in norms.items():
        ax.semilogy(np.arange(1, len(values) + 1), values, label=arch)
    k = np.arange(1, len(values) + 1)
    ax.semilogy(k, SIGMOID_DERIVATIVE_MAX ** k, "k:", label="0.25^k (sigmoid bound)")
    ax.set(xlabel="k = T - t (steps back)", ylabel="||dh_T / dh_t||",
           title="how far back the error reaches, at initialisation")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    save_png(fig, path)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--units", type=int, default=32, help="(default: %(default)s)")
    p.add_argument("--steps", type=int, default=100, help="k up to (default: %(default)s)")
    p.add_argument("--sequences", type=int, default=16, help="random sequences (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="(default: %(default)s)")
    p.add_argument("--out", default="vanishing_gradient.png", help="PNG to write (default: %(default)s)")
    args = p.parse_args(argv)
    norms = {arch: gradient_norms(arch, args.units, args.steps, args.sequences, args.seed)
             for arch in ARCHS}
    print(table(norms))
    print(f"the notes' bound: sigmoid'(a) <= {SIGMOID_DERIVATIVE_MAX}, so through k sigmoid steps "
          f"with weights of norm <= 1 the error shrinks at least as 0.25^k "
          f"({SIGMOID_DERIVATIVE_MAX ** args.steps:.1e} at k = {args.steps})")
    plot(norms, args.out)
    print(f"plot in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

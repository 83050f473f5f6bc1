"""The notes' first exercise: a simple RNN learns 8-bit binary addition.

Each step reads one bit of each operand, least significant first, and emits
one bit of the sum; the only thing it has to carry from step to step is the
carry, which is exactly what the recurrent state is for.  Trained on a random
sample of the pairs, it is scored on all 16,384 pairs with both operands
below 128 (so that the sum fits in 8 bits): a sum counts only if every bit is right.

    python examples/binary_addition.py [--units 16] [--train-pairs 2048] [--max-epochs 60]
"""
import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, uninstalled

import keras  # noqa: E402
import numpy as np  # noqa: E402

from lm_app.layers import SimpleRNNCell  # noqa: E402

BITS = 8


def all_pairs(limit=2 ** (BITS - 1)):
    """Every (a, b) with 0 <= a, b < limit, as two int arrays."""
    a, b = np.meshgrid(np.arange(limit), np.arange(limit), indexing="ij")
    return a.ravel(), b.ravel()


def to_bits(n):
    """(N,) ints -> (N, BITS) bits, least significant first."""
    return ((np.asarray(n)[:, None] >> np.arange(BITS)) & 1).astype("float32")


def from_bits(bits):
    """(N, BITS) bits, least significant first -> (N,) ints."""
    return (np.asarray(bits).astype("int64") << np.arange(BITS)).sum(axis=1)


def encode(a, b):
    """Inputs (N, BITS, 2): the two operands' bits per step; targets (N, BITS, 1): the sum's."""
    return np.stack([to_bits(a), to_bits(b)], axis=-1), to_bits(np.asarray(a) + b)[..., None]


def build_model(units=16):
    inputs = keras.Input((BITS, 2))
    hidden = keras.layers.RNN(SimpleRNNCell(units), return_sequences=True)(inputs)
    outputs = keras.layers.Dense(1, activation="sigmoid")(hidden)  # P(sum bit = 1) per step
    return keras.Model(inputs, outputs, name="binary_adder")


def exact_accuracy(model, a, b):
    """Share of pairs whose whole sum comes out right, bits rounded at 0.5."""
    x, _ = encode(a, b)
    bits = model.predict(x, batch_size=4096, verbose=0)[..., 0] > 0.5
    return float(np.mean(from_bits(bits) == np.asarray(a) + b))


class _StopWhenExact(keras.callbacks.Callback):
    """Score all pairs after each epoch; stop as soon as every sum is right."""

    def __init__(self, a, b):
        super().__init__()
        self.a, self.b, self.accuracy, self.epochs = a, b, 0.0, 0

    def on_epoch_end(self, epoch, logs=None):
        self.accuracy, self.epochs = exact_accuracy(self.model, self.a, self.b), epoch + 1
        if self.accuracy == 1.0:
            self.model.stop_training = True


def train(units=16, train_pairs=2048, max_epochs=60, batch_size=32, learning_rate=0.01, seed=0):
    """Train on ``train_pairs`` random pairs; returns (model, exact accuracy on all pairs, epochs)."""
    keras.utils.set_random_seed(seed)
    a, b = all_pairs()
    pick = np.random.default_rng(seed).choice(len(a), size=min(train_pairs, len(a)), replace=False)
    x, y = encode(a[pick], b[pick])
    model = build_model(units)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="binary_crossentropy")
    stop = _StopWhenExact(a, b)
    model.fit(x, y, batch_size=batch_size, epochs=max_epochs, callbacks=[stop], verbose=0)
    return model, stop.accuracy, stop.epochs


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--units", type=int, default=16, help="hidden units (default: %(default)s)")
    p.add_argument("--train-pairs", type=int, default=2048,
                   help="random pairs trained on (default: %(default)s)")
    p.add_argument("--max-epochs", type=int, default=60, help="(default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=32, help="(default: %(default)s)")
    p.add_argument("--learning-rate", type=float, default=0.01, help="Adam's (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="(default: %(default)s)")
    args = p.parse_args(argv)
    model, accuracy, epochs = train(args.units, args.train_pairs, args.max_epochs,
                                    args.batch_size, args.learning_rate, args.seed)
    a, b = all_pairs()
    print(f"exact sums on all {len(a)} pairs below {2 ** (BITS - 1)}: {accuracy:.4%} "
          f"after {epochs} epochs")
    x, _ = encode(a[:1] + 37, b[:1] + 90)
    bits = model.predict(x, verbose=0)[0, :, 0] > 0.5
    print(f"e.g. 37 + 90 = {from_bits(bits[None])[0]}")
    return 0 if accuracy == 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())

"""Training speed of our cells against the Keras built-ins, measured side by side in one run.

Each model is embedding 200 -> 2 recurrent layers of 200 units -> softmax over
3,616 words, trained (forward, backward, Adam step) on sequences of 35 tokens.
``rnn``, ``lstm``, ``gru``: our cells in ``keras.layers.RNN``; ``lstm-layer``,
``gru-layer``: our ``LSTM`` and ``GRU`` layers with their training fast paths.
Ours and the built-in alternate in short rounds, so a noisy neighbour slows
both alike; the ratio is of medians.

    .venv/bin/python bench/layers.py [--steps 20] [--rounds 5] [--batch 20 64]

Run it alone: two trainings at once on two cores ruin both measurements.
"""
import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from bench import record  # noqa: E402
from lm_app.layers import GRU, LSTM, GRUCell, LSTMCell, SimpleRNNCell  # noqa: E402

VOCAB, EMBED, UNITS, LAYERS, STEPS = 3616, 200, 200, 2, 35

PAIRS = {
    "rnn": (lambda: keras.layers.RNN(SimpleRNNCell(UNITS), return_sequences=True),
            lambda: keras.layers.SimpleRNN(UNITS, return_sequences=True)),
    "lstm": (lambda: keras.layers.RNN(LSTMCell(UNITS), return_sequences=True),
             lambda: keras.layers.LSTM(UNITS, return_sequences=True)),
    "gru": (lambda: keras.layers.RNN(GRUCell(UNITS), return_sequences=True),
            lambda: keras.layers.GRU(UNITS, return_sequences=True)),
    # Our whole-sequence layers: in training, the native (or XLA) loops with hand-written BPTT.
    "lstm-layer": (lambda: LSTM(UNITS, return_sequences=True),
                   lambda: keras.layers.LSTM(UNITS, return_sequences=True)),
    "gru-layer": (lambda: GRU(UNITS, return_sequences=True),
                  lambda: keras.layers.GRU(UNITS, return_sequences=True)),
}


def make_step(layer_factory):
    """A compiled training step of the language model built on ``layer_factory``."""
    keras.utils.set_random_seed(0)
    ids = keras.Input((STEPS,), dtype="int32")
    x = keras.layers.Embedding(VOCAB, EMBED)(ids)
    for _ in range(LAYERS):
        x = layer_factory()(x)
    model = keras.Model(ids, keras.layers.Dense(VOCAB)(x))
    optimizer = keras.optimizers.Adam(1e-3)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
        return loss

    return step


def timed(step, batch, n):
    """Seconds for ``n`` steps (a value read back at the end so the work really finished)."""
    x = tf.constant(np.random.randint(0, VOCAB, (batch, STEPS)), tf.int32)
    y = tf.constant(np.random.randint(0, VOCAB, (batch, STEPS)), tf.int32)
    start = time.perf_counter()
    for _ in range(n):
        loss = step(x, y)
    float(loss)
    return time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="training steps per round")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds per pair")
    parser.add_argument("--batch", type=int, nargs="+", default=[20, 64])
    parser.add_argument("--arch", nargs="+", default=list(PAIRS), choices=list(PAIRS))
    record.add_argument(parser)
    args = parser.parse_args(argv)

    print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}, "
          f"{os.cpu_count()} CPU(s); tokens/s of training, median of {args.rounds} rounds")
    print(f"{'cell':<11}{'batch':>6}{'ours':>12}{'keras':>12}{'ours/keras':>12}")
    ratios, rows = [], []
    for arch in args.arch:
        ours, builtin = (make_step(factory) for factory in PAIRS[arch])
        for batch in args.batch:
            for step in (ours, builtin):
                timed(step, batch, 3)  # trace and warm up
            times = {"ours": [], "keras": []}
            for _ in range(args.rounds):
                times["ours"].append(timed(ours, batch, args.steps))
                times["keras"].append(timed(builtin, batch, args.steps))
            rate = {k: args.steps * batch * STEPS / statistics.median(v) for k, v in times.items()}
            ratio = rate["ours"] / rate["keras"]
            ratios.append(ratio)
            rows.append([arch, batch, rate["ours"], rate["keras"], ratio])
            print(f"{arch:<11}{batch:>6}{rate['ours']:>12,.0f}{rate['keras']:>12,.0f}{ratio:>12.2f}",
                  flush=True)
    print(f"lowest ratio {min(ratios):.2f} (target >= 0.9)")
    record.save("layers", [record.table(
        f"training tokens/s, median of {args.rounds} rounds of {args.steps} steps; "
        f"TensorFlow {tf.__version__}, Keras {keras.__version__}",
        ["cell", "batch", "ours", "keras", "ours/keras"], rows)],
        {"lowest ratio ours/keras (target >= 0.9)": min(ratios)}, argv, args.results)


if __name__ == "__main__":
    main()

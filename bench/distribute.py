"""The stream protocol on two workers (#17.2): each worker's tokens/s beside one process's, on Gutenberg.

The data of ``bench/scale.py`` (its split by file, its vocabulary, the first
``--train-tokens`` of the training files) and the stream recipe of
``bench/lm.py`` (LSTM 2 x 200, embedding 200, bptt 35, batch 20, dropout 0.2,
SGD lr 20, clip 0.25).  Two sides take turns epoch by epoch: one process
(``--strategy default``), then two worker processes on localhost ports
(``--strategy multi-worker``, ``TF_CONFIG``), each carrying 10 of the 20 rows.
Prints each epoch's tokens/s of the one process, of each worker and of the
two together, and both sides' validation perplexity; writes them to
``bench/results/distribute.json`` and ``bench/RESULTS.md``.  The two sides
train the same weights up to float rounding, which the recipe's learning rate
of 20 amplifies within the first epoch (as it does between one process's
native kernels and its XLA loops): their perplexities agree only roughly.

On one machine the two workers share its cores, and each step all-reduces
the whole gradient over localhost: the figures say what the protocol costs
here, not what two machines gain.

    .venv/bin/python bench/distribute.py [--epochs 2] [--train-tokens 200000] [--quick]

``--quick`` checks that the script works (a few minutes); its figures mean little.
"""
import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench import lm, record, scale  # noqa: E402

QUICK = scale.QUICK


def run_side(cluster, index, epochs, work, seed):
    """Train one side (``cluster``: the workers' addresses, this one ``index``; none: one process)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if cluster:  # before TensorFlow starts: the strategy reads it
        os.environ["TF_CONFIG"] = json.dumps({"cluster": {"worker": cluster},
                                              "task": {"type": "worker", "index": index}})
    from lm_app.config import TrainConfig
    from lm_app.train import train

    r = lm.RECIPE
    cfg = TrainConfig(corpus=str(work / "train.txt"), valid_corpus=str(work / "valid.txt"),
                      test_corpus=str(work / "test.txt"), vocab=str(work / "vocab.txt"),
                      model_dir=str(work / ("lm-workers" if cluster else "lm-one")), objective="stream",
                      arch="lstm", layers=r["nlayers"], embedding=r["emsize"], hidden=r["nhid"], bptt=r["bptt"],
                      batch_size=r["batch_size"], dropout=r["dropout"], optimizer="sgd", learning_rate=r["lr"],
                      clip_norm=r["clip"], lr_decay=4.0, epochs=epochs, patience=epochs, seed=seed,
                      strategy="multi-worker" if cluster else "default")
    train(cfg, verbose=0, log=lambda *a: None,
          on_epoch=lambda logs: lm.hand_over({k: logs[k] for k in ("tokens_per_second", "val_perplexity")}))
    return {"peak_mib": lm.peak_mib()}


class Side(lm.Child):
    """One process of a side, run by this script (``bench/lm.py``'s turn-taking protocol)."""

    def __init__(self, name, cluster, index, epochs, work, seed):
        env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")
        self.name, self.err = name, tempfile.TemporaryFile("w+")
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--only", ",".join(cluster) or "one", "--index", str(index),
             "--epochs", str(epochs), "--work", str(work), "--seed", str(seed)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.err, text=True, env=env, cwd=ROOT)


def localhost_cluster(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return [f"127.0.0.1:{port}" for port in ports]


def run_sides(epochs, work, seed):
    """Each process's result by name (one, worker 0, worker 1): the sides in turns, the order alternating."""
    cluster = localhost_cluster(2)
    start = {"one": lambda: [Side("one", [], 0, epochs, work, seed)],
             "workers": lambda: [Side(f"worker {i}", cluster, i, epochs, work, seed) for i in range(2)]}
    sides, epochs_of, order = {}, {}, ["one", "workers"]
    for epoch in range(epochs):
        for name in order if epoch % 2 == 0 else order[::-1]:
            if name in sides:
                for side in sides[name]:
                    side.resume()
            else:  # a side's first epoch begins as it starts, while the other waits
                sides[name] = start[name]()
            for side in sides[name]:
                epochs_of.setdefault(side.name, []).append(side.until("EPOCH"))
    results = {}
    for name in order:  # one side at a time: test scores, export
        for side in sides[name]:
            side.resume()
        for side in sides[name]:
            results[side.name] = dict(side.result(), epochs=epochs_of[side.name])
    return results


def report(results, epochs):
    """Print the per-epoch table and the figures; return the table's columns and rows, and the figures."""
    columns = ["epoch", "one process tokens/s", "worker 0 tokens/s", "worker 1 tokens/s", "workers together",
               "together / one", "one val ppl", "workers val ppl"]
    rows = []
    for i, (one, w0, w1) in enumerate(zip(*(results[n]["epochs"] for n in ("one", "worker 0", "worker 1"))), 1):
        together = w0["tokens_per_second"] + w1["tokens_per_second"]
        rows.append([i, one["tokens_per_second"], w0["tokens_per_second"], w1["tokens_per_second"], together,
                     together / one["tokens_per_second"], one["val_perplexity"], w0["val_perplexity"]])
    print(" | ".join(columns))
    for row in rows:
        print(" | ".join(f"{v:,.2f}" if isinstance(v, float) else str(v) for v in row))
    later = rows[1:] if epochs > 1 else rows
    label = "after the first epoch" if epochs > 1 else "the one epoch"

    def mean(column):
        return sum(row[column] for row in later) / len(later)

    figures = {f"tokens/s one process, {label}": mean(1),
               f"tokens/s per worker, {label}": (mean(2) + mean(3)) / 2,
               f"tokens/s two workers together / one process, {label}": mean(4) / mean(1),
               "largest validation perplexity difference between the sides (relative; rounding, amplified)":
                   max(abs(row[7] / row[6] - 1) for row in rows),
               "peak memory MiB one, worker 0, worker 1": ", ".join(
                   f"{results[n]['peak_mib']:.0f}" for n in ("one", "worker 0", "worker 1"))}
    for name, value in figures.items():
        print(f"{name}: {value:.3g}" if isinstance(value, float) else f"{name}: {value}")
    return columns, rows, figures


def main(argv=None):
    parser = scale.run_arguments(__doc__.splitlines()[0], epochs=2, train_tokens=200_000, held_out_tokens=20_000)
    parser.add_argument("--index", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.only:
        cluster = [] if args.only == "one" else args.only.split(",")
        print("RESULT " + json.dumps(run_side(cluster, args.index, args.epochs, Path(args.work), args.seed)),
              flush=True)
        return
    if not scale.DATA.is_dir():
        sys.exit(f"{scale.DATA} is not here")
    if args.quick:
        vars(args).update(QUICK)
    with tempfile.TemporaryDirectory() as work:
        split, vocab_size, counted = scale.prepare(Path(work), args.train_tokens, args.held_out_tokens)
        title = (f"Gutenberg (the split of bench/scale.py), LSTM 2x200, bptt 35, batch 20 rows (10 per worker), "
                 f"vocabulary {vocab_size:,}; {args.train_tokens:,} training tokens per epoch, "
                 f"{args.held_out_tokens:,} per held-out part, {args.epochs} epoch(s); both workers on this machine")
        print(title)
        columns, rows, figures = report(run_sides(args.epochs, Path(work), args.seed), args.epochs)
    record.save("distribute", [record.table(title, columns, rows)], figures, argv, args.results)


if __name__ == "__main__":
    main()

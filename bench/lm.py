"""lm_app against PyTorch on PyTorch's own ``word_language_model`` protocol, side by side in one run.

Shakespeare (``../shared/data/shakespeare``, PTB format), the recipe's small
configuration: LSTM (``--cell gru``: GRU, against ``nn.GRU``), 2 layers x 200, embedding 200, bptt 35, batch 20,
dropout 0.2, SGD lr 20 with gradient clipping 0.25 and lr / 4 on a plateau,
4 epochs.  Each side runs in its own process, so each peak memory is its
own, and the two take turns epoch by epoch (never at once: two trainings on
two cores ruin both), so that each epoch of one side runs within seconds of
the same epoch of the other, in the same spell of this noisy machine.
Prints per epoch seconds, training tokens/s and validation perplexity, then
test perplexity, peak memory, and the ratios (and writes them to
``bench/results/lm.json`` and ``bench/RESULTS.md``); ``--pairs N`` runs N pairs
with seeds 1111, 1112, ... (the same on both sides) and prints the median
ratios, because one seed's test perplexity varies by several points; also
build-dict throughput on the text repeated to 25 and 100 MB, and its peak
memory at both sizes.

    .venv/bin/python bench/lm.py [--epochs 4] [--pairs N] [--cell lstm|gru] [--build-dict-only]

Needs ``pip install torch==2.13.0`` (CPU) for the PyTorch side.
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "shakespeare"
sys.path.insert(0, str(ROOT))
from bench import record  # noqa: E402

SEED = 1111  # the recipe's
RECIPE = dict(epochs=4, batch_size=20, bptt=35, lr=20.0, clip=0.25, emsize=200, nhid=200, nlayers=2,
              dropout=0.2)


def peak_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def hand_over(record):
    """End of an epoch in turn-taking mode: report it, then wait until the other side's epoch is done."""
    print("EPOCH " + json.dumps(record), flush=True)
    sys.stdin.readline()


def run_ours(epochs, work, seed, cell="lstm"):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from lm_app import corpus, evaluate
    from lm_app.config import TrainConfig
    from lm_app.train import train

    vocab = corpus.build_vocabulary(str(DATA / "train.txt"), min_count=0, mode="pretokenized")
    vocab.save(work / "vocab.txt")
    cfg = TrainConfig(corpus=str(DATA / "train.txt"), valid_corpus=str(DATA / "valid.txt"),
                      test_corpus=str(DATA / "test.txt"),
                      vocab=str(work / "vocab.txt"), model_dir=str(work / "lm"), objective="stream",
                      arch=cell, layers=RECIPE["nlayers"], embedding=RECIPE["emsize"],
                      hidden=RECIPE["nhid"], bptt=RECIPE["bptt"], batch_size=RECIPE["batch_size"],
                      dropout=RECIPE["dropout"], optimizer="sgd", learning_rate=RECIPE["lr"],
                      clip_norm=RECIPE["clip"], lr_decay=4.0, epochs=epochs, patience=epochs, seed=seed)
    train(cfg, verbose=0, log=lambda *a: None,
          on_epoch=lambda logs: hand_over({"tokens_per_second": logs["tokens_per_second"]}))
    history = json.loads((work / "lm" / "history.json").read_text())
    test = evaluate.evaluate(work / "lm", str(DATA / "test.txt"))
    records = [{"seconds": s, "tokens_per_second": t, "val_perplexity": v}
               for s, t, v in zip(history["seconds"], history["tokens_per_second"],
                                  history["val_perplexity"])]
    return {"epochs": records, "test_perplexity": test["perplexity"], "peak_mib": peak_mib(),
            "vocab": len(vocab)}


def run_torch(epochs, work, seed, cell="lstm"):
    import numpy as np

    import bench.torch_lm as torch_lm
    from lm_app import corpus, text  # plain Python: no TensorFlow in this process's memory

    vocab = corpus.build_vocabulary(str(DATA / "train.txt"), min_count=0, mode="pretokenized")
    ids = {split: np.array(vocab.ids(text.tokenize((DATA / f"{split}.txt").read_text(), "pretokenized")))
           for split in ("train", "valid", "test")}
    records, test_ppl = torch_lm.run(ids["train"], ids["valid"], ids["test"], len(vocab),
                                     **dict(RECIPE, epochs=epochs), seed=seed, log=lambda *a: None,
                                     on_epoch=hand_over, cell=cell)
    return {"epochs": records, "test_perplexity": test_ppl, "peak_mib": peak_mib(), "vocab": len(vocab)}


def run_build_dict(work, target_mb):
    """build-dict throughput on the raw play repeated to >= target_mb, in a fresh process.

    Peak memory is this process's and its largest counting worker's (it
    forks one per core), each of which must stay flat as the corpus grows.
    """
    from lm_app import corpus

    raw = (DATA / "input.txt").read_text(encoding="utf-8")
    big = work / "big.txt"
    with open(big, "w", encoding="utf-8") as f:
        for _ in range(target_mb * 1_000_000 // len(raw.encode()) + 1):
            f.write(raw)
    size = big.stat().st_size
    start = time.perf_counter()
    with open(big, "rb") as f:  # the floor: the file from the page cache, as build-dict reads it
        while f.read(1 << 22):
            pass
    read_seconds = time.perf_counter() - start
    start = time.perf_counter()
    corpus.build_vocabulary(str(big), min_count=3).save(work / "vocab.txt")
    seconds = time.perf_counter() - start
    peaks = {"peak_mib": peak_mib(),
             "worker_peak_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}
    native = corpus.NativeCounter.open
    corpus.NativeCounter.open = classmethod(lambda cls: None)  # the Python counter, side by side
    start = time.perf_counter()
    python_vocab = corpus.build_vocabulary(str(big), min_count=3)
    python_seconds = time.perf_counter() - start
    corpus.NativeCounter.open = native
    saved = corpus.Vocabulary.load(work / "vocab.txt")
    assert (python_vocab.tokens, python_vocab.counts) == (saved.tokens, saved.counts), "the counters disagree"
    return {"mb": size / 1e6, "seconds": seconds, "mb_per_second": size / 1e6 / seconds,
            "read_mb_per_second": size / 1e6 / read_seconds, "python_mb_per_second": size / 1e6 / python_seconds,
            **peaks}


class Child:
    """One side (or build-dict) in its own process; it prints ``EPOCH {...}`` after each epoch
    and waits for a line on stdin, and ``RESULT {...}`` at the end."""

    def __init__(self, name, epochs, mb=100, seed=SEED, cell="lstm"):
        env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")
        self.name, self.err = name, tempfile.TemporaryFile("w+")  # a file: a full stderr pipe would block
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--only", name, "--epochs", str(epochs), "--mb", str(mb), "--seed", str(seed),
             "--cell", cell],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.err, text=True, env=env, cwd=ROOT)

    def until(self, tag):
        """The JSON of the next line that starts with ``tag`` (other output is ignored)."""
        for line in self.proc.stdout:
            if line.startswith(tag + " "):
                return json.loads(line[len(tag) + 1:])
        self.proc.wait()
        self.err.seek(0)
        sys.exit(f"{self.name} failed:\n{self.err.read()[-3000:]}")

    def resume(self):
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def result(self):
        result = self.until("RESULT")
        self.proc.wait()
        return result


def child(name, epochs, mb=100):
    return Child(name, epochs, mb).result()


def run_pair(epochs, seed, cell="lstm"):
    """lm_app and PyTorch epoch by epoch in turns; each side's epoch is timed by itself."""
    sides = []
    for name in ("ours", "torch"):  # each starts (imports, data, model) while the other waits
        sides.append(Child(name, epochs, seed=seed, cell=cell))
        sides[-1].until("EPOCH")
    for _ in range(epochs - 1):
        for side in sides:
            side.resume()
            side.until("EPOCH")
    results = []
    for side in sides:  # one at a time: test evaluation, export
        side.resume()
        results.append(side.result())
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=RECIPE["epochs"])
    parser.add_argument("--only", choices=("ours", "torch", "build-dict"), help=argparse.SUPPRESS)
    parser.add_argument("--build-dict-only", action="store_true", help="skip the two trainings")
    parser.add_argument("--mb", type=int, default=100, help="build-dict corpus size")
    parser.add_argument("--pairs", type=int, default=1,
                        help="lm_app/PyTorch runs to alternate, pair k with seed 1111 + k - 1 on both sides: "
                             "more pairs, a steadier speed ratio and a perplexity comparison over seeds")
    parser.add_argument("--seed", type=int, default=SEED, help=argparse.SUPPRESS)
    parser.add_argument("--cell", choices=("lstm", "gru"), default="lstm",
                        help="the recurrent layers on both sides (gru: PyTorch's nn.GRU); results go to lm-gru.json")
    record.add_argument(parser)
    args = parser.parse_args(argv)
    if not DATA.is_dir():
        sys.exit(f"{DATA} is not here")
    if args.only:
        with tempfile.TemporaryDirectory() as work:
            run = {"ours": lambda: run_ours(args.epochs, Path(work), args.seed, args.cell),
                   "torch": lambda: run_torch(args.epochs, Path(work), args.seed, args.cell),
                   "build-dict": lambda: run_build_dict(Path(work), args.mb)}[args.only]
            print("RESULT " + json.dumps(run()), flush=True)
        return
    if args.build_dict_only:
        figures = report_build_dict(args.epochs)
        record.save("lm-build-dict", [], figures, argv, args.results, script="lm")
        return

    ratios, rows, figures = [], [], {}
    for pair in range(1, args.pairs + 1):
        seed = SEED + pair - 1
        ours, ref = run_pair(args.epochs, seed, args.cell)
        if args.pairs > 1:
            print(f"--- pair {pair} of {args.pairs}, seed {seed}")
        ratios.append(report_pair(ours, ref, args.epochs, args.cell))
        rows += [[seed, i, a["seconds"], a["tokens_per_second"], a["val_perplexity"], b["seconds"],
                  b["tokens_per_second"], b["val_perplexity"], a["tokens_per_second"] / b["tokens_per_second"]]
                 for i, (a, b) in enumerate(zip(ours["epochs"], ref["epochs"]), 1)]
        figures[f"seed {seed}: test perplexity lm_app, torch"] = \
            f"{ours['test_perplexity']:.1f}, {ref['test_perplexity']:.1f}"
        figures[f"seed {seed}: peak memory MiB lm_app, torch"] = f"{ours['peak_mib']:.0f}, {ref['peak_mib']:.0f}"
    speed, steady, ppl = zip(*ratios)
    if args.pairs > 1:
        print("speed ratios of the pairs, all epochs: " + ", ".join(f"{r:.2f}" for r in speed) +
              "; after the first epoch: " + ", ".join(f"{r:.2f}" for r in steady) +
              f"; medians {statistics.median(speed):.2f} and {statistics.median(steady):.2f}")
        print("test perplexity ratios of the pairs: " + ", ".join(f"{r:.3f}" for r in ppl) +
              f"; median {statistics.median(ppl):.3f} (one seed's perplexity varies by several points)")
    figures.update({
        "training speed ratio lm_app / torch, median of the pairs (target >= 1.25)": statistics.median(speed),
        "the same after the first epoch": statistics.median(steady),
        "test perplexity ratio lm_app / torch, median of the pairs (target <= 1)": statistics.median(ppl),
    })
    if args.cell == "lstm":  # build-dict does not depend on the cell: measured once, with the LSTM
        figures.update(report_build_dict(args.epochs))
    name = "lm" if args.cell == "lstm" else f"lm-{args.cell}"
    record.save(name, [record.table(
        f"Shakespeare, {args.cell.upper()} 2x200, bptt 35, batch 20, {args.epochs} epochs, per epoch",
        ["seed", "epoch", "lm_app s", "lm_app tokens/s", "lm_app val ppl", "torch s", "torch tokens/s",
         "torch val ppl", "speed ratio"], rows)], figures, argv, args.results, script="lm")


def report_pair(ours, ref, epochs, cell="lstm"):
    """Print one lm_app run beside one PyTorch run; return the speed ratios (all epochs, after the first)
    and the test perplexity ratio."""
    print(f"Shakespeare, {cell.upper()} 2x200, bptt 35, batch 20, {epochs} epochs; vocabulary {ours['vocab']}")
    print(f"{'epoch':>5} | {'lm_app s':>8} {'tok/s':>8} {'val ppl':>8} | {'torch s':>8} {'tok/s':>8} "
          f"{'val ppl':>8} | {'speed x':>7}")
    for i, (a, b) in enumerate(zip(ours["epochs"], ref["epochs"]), 1):
        print(f"{i:>5} | {a['seconds']:>8.1f} {a['tokens_per_second']:>8,.0f} {a['val_perplexity']:>8.1f} | "
              f"{b['seconds']:>8.1f} {b['tokens_per_second']:>8,.0f} {b['val_perplexity']:>8.1f} | "
              f"{a['tokens_per_second'] / b['tokens_per_second']:>7.2f}")
    speed = (sum(e["tokens_per_second"] for e in ours["epochs"]) /
             sum(e["tokens_per_second"] for e in ref["epochs"]))
    print(f"test perplexity: lm_app {ours['test_perplexity']:.1f}, torch {ref['test_perplexity']:.1f} "
          f"(ratio {ours['test_perplexity'] / ref['test_perplexity']:.3f}, target <= 1)")
    print(f"peak memory: lm_app {ours['peak_mib']:.0f} MiB, torch {ref['peak_mib']:.0f} MiB")
    print(f"training speed ratio lm_app / torch: {speed:.2f} (target >= 1.25)")
    steady = speed
    if len(ours["epochs"]) > 1:  # epoch 1 of lm_app also traces and compiles
        steady = (sum(e["tokens_per_second"] for e in ours["epochs"][1:]) /
                  sum(e["tokens_per_second"] for e in ref["epochs"][1:]))
        print(f"  after the first epoch (one-time tracing and compilation left out): {steady:.2f}")
    return speed, steady, ours["test_perplexity"] / ref["test_perplexity"]


def report_build_dict(epochs):
    """Print build-dict's throughput and memory at two sizes; return them as figures."""
    figures = {}
    for mb in (25, 100):  # the same peak at both sizes shows that memory does not grow with the corpus
        bd = child("build-dict", epochs, mb)
        print(f"build-dict: {bd['mb']:.0f} MB in {bd['seconds']:.1f} s = {bd['mb_per_second']:.1f} MB/s "
              f"(target >= 100), peak memory {bd['peak_mib']:.0f} MiB + {bd['worker_peak_mib']:.0f} MiB "
              "per counting worker")
        print(f"  the Python counter: {bd['python_mb_per_second']:.1f} MB/s (native / Python "
              f"{bd['mb_per_second'] / bd['python_mb_per_second']:.2f}x); reading the file alone: "
              f"{bd['read_mb_per_second']:.0f} MB/s")
        figures[f"build-dict, {bd['mb']:.0f} MB: MB/s (target >= 100)"] = bd["mb_per_second"]
        figures[f"build-dict, {bd['mb']:.0f} MB: MB/s with the Python counter"] = bd["python_mb_per_second"]
        figures[f"build-dict, {bd['mb']:.0f} MB: MB/s reading the file alone"] = bd["read_mb_per_second"]
        figures[f"build-dict, {bd['mb']:.0f} MB: peak MiB, main + per counting worker"] = \
            f"{bd['peak_mib']:.0f} + {bd['worker_peak_mib']:.0f}"
    return figures


if __name__ == "__main__":
    main()

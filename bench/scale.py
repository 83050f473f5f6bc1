"""The adaptive softmax at scale (#17.1): lm_app's full softmax, its adaptive softmax and PyTorch side by side.

Gutenberg (``../shared/data/gutenberg``, one file per author, a vocabulary of
over 20k words at ``--min-count 5``), the stream recipe of ``bench/lm.py``
(LSTM 2 x 200, embedding 200, bptt 35, batch 20, dropout 0.2, SGD lr 20, clip
0.25, lr / 4 on a plateau).  The split is by file, about 90/5/5: the files
sorted by name, those at positions 4 and 24 (from 0) are the validation part,
those at 14 and 34 the test part, the other 31 the training part; the script
prints the files and writes them into the results.  The vocabulary is counted
on the whole training files; a full epoch of them would take each side far
longer than the 15 minutes the whole run may take, so each side trains on the
first ``--train-tokens / 31`` tokens of every training file and is scored on
the first tokens of the held-out files (``--held-out-tokens`` per part).

Three processes take turns epoch by epoch, in an order that rotates each
epoch (never two at once): lm_app with ``--softmax full``, lm_app with
``--softmax adaptive --cutoffs 2000,10000``, and PyTorch's
``word_language_model`` (``bench/torch_lm.py``, full softmax).  Prints each
epoch's tokens/s and validation perplexity, then the test perplexities and the
ratios against the targets (adaptive >= 2x our full softmax, >= 2.5x PyTorch,
test perplexity within 3 % of our full softmax), and writes them to
``bench/results/scale.json`` and ``bench/RESULTS.md``.

    .venv/bin/python bench/scale.py [--epochs 3] [--train-tokens 400000] [--quick]

``--quick`` checks that the script works (meant to take at most 2 minutes); its figures mean little.
Needs ``pip install torch==2.13.0`` (CPU) for the PyTorch side; without it the
two lm_app sides run alone and the script says so.
"""
import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "gutenberg"
sys.path.insert(0, str(ROOT))
from bench import lm, record  # noqa: E402

SIDES = ("full", "adaptive", "torch")
CUTOFFS = (2000, 10000)
MIN_COUNT = 5
VALID_AT, TEST_AT = (4, 24), (14, 34)  # positions in the files sorted by name
QUICK = dict(epochs=2, train_tokens=20_000, held_out_tokens=4_000)


def split_files():
    """``{"train": [...], "valid": [...], "test": [...]}``: whole files, the rule of the module docstring."""
    files = sorted(p for p in DATA.glob("*.txt"))
    parts = {"valid": [files[i] for i in VALID_AT if i < len(files)],
             "test": [files[i] for i in TEST_AT if i < len(files)]}
    held = {p for part in parts.values() for p in part}
    return {"train": [p for p in files if p not in held], **parts}


def first_tokens(path, n):
    """The first ``n`` tokens of a file under the words rule (read only as far as needed)."""
    from lm_app import text

    with open(path, encoding="utf-8") as f:
        tokens = text.tokenize(f.read(max(n, 1) * 12))
    return tokens[:n]


def prepare(work, train_tokens, held_out_tokens):
    """The vocabulary (of the whole training files) and the three parts as text files in ``work``."""
    from lm_app import corpus

    parts = split_files()
    linked = work / "train_files"
    linked.mkdir()
    for path in parts["train"]:
        (linked / path.name).symlink_to(path)
    vocab = corpus.build_vocabulary(str(linked / "*.txt"), min_count=MIN_COUNT)
    vocab.save(work / "vocab.txt")
    budgets = {"train": train_tokens, "valid": held_out_tokens, "test": held_out_tokens}
    for part, files in parts.items():
        tokens = [t for path in files for t in first_tokens(path, budgets[part] // len(files))]
        lines = (" ".join(tokens[i:i + 20]) for i in range(0, len(tokens), 20))
        (work / f"{part}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {part: [p.name for p in files] for part, files in parts.items()}, len(vocab), vocab.meta["tokens"]


def run_ours(softmax, epochs, work, seed):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from lm_app import evaluate
    from lm_app.config import TrainConfig
    from lm_app.train import train

    r = lm.RECIPE
    extra = {"softmax": "adaptive", "cutoffs": CUTOFFS} if softmax == "adaptive" else {}
    model_dir = work / f"lm-{softmax}"
    cfg = TrainConfig(corpus=str(work / "train.txt"), valid_corpus=str(work / "valid.txt"),
                      test_corpus=str(work / "test.txt"), vocab=str(work / "vocab.txt"), model_dir=str(model_dir),
                      objective="stream", arch="lstm", layers=r["nlayers"], embedding=r["emsize"], hidden=r["nhid"],
                      bptt=r["bptt"], batch_size=r["batch_size"], dropout=r["dropout"], optimizer="sgd",
                      learning_rate=r["lr"], clip_norm=r["clip"], lr_decay=4.0, epochs=epochs, patience=epochs,
                      seed=seed, **extra)
    train(cfg, verbose=0, log=lambda *a: None,
          on_epoch=lambda logs: lm.hand_over({"tokens_per_second": logs["tokens_per_second"]}))
    history = json.loads((model_dir / "history.json").read_text())
    test = evaluate.evaluate(model_dir, str(work / "test.txt"))
    records = [{"seconds": s, "tokens_per_second": t, "val_perplexity": v}
               for s, t, v in zip(history["seconds"], history["tokens_per_second"], history["val_perplexity"])]
    return {"epochs": records, "test_perplexity": test["perplexity"], "peak_mib": lm.peak_mib()}


def run_torch(epochs, work, seed):
    import numpy as np

    import bench.torch_lm as torch_lm
    from lm_app import corpus, text  # plain Python: no TensorFlow in this process

    vocab = corpus.Vocabulary.load(work / "vocab.txt")
    ids = {part: np.array(vocab.ids(text.tokenize((work / f"{part}.txt").read_text(encoding="utf-8"))))
           for part in ("train", "valid", "test")}
    records, test_ppl = torch_lm.run(ids["train"], ids["valid"], ids["test"], len(vocab),
                                     **dict(lm.RECIPE, epochs=epochs), seed=seed, log=lambda *a: None,
                                     on_epoch=lm.hand_over)
    return {"epochs": records, "test_perplexity": test_ppl, "peak_mib": lm.peak_mib()}


class Side(lm.Child):
    """One side in its own process, run by this script (``bench/lm.py``'s turn-taking protocol)."""

    def __init__(self, name, epochs, work, seed):
        # The caller's PYTHONPATH after the repository: a torch installed apart from the venv is found.
        path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
        env = dict(os.environ, PYTHONPATH=path, TF_CPP_MIN_LOG_LEVEL="3")
        self.name, self.err = name, tempfile.TemporaryFile("w+")
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--only", name, "--epochs", str(epochs), "--work", str(work),
             "--seed", str(seed)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.err, text=True, env=env, cwd=ROOT)


def run_sides(names, epochs, work, seed):
    """The sides epoch by epoch in turns, the order rotating each epoch; their results by name."""
    sides = {}
    for name in names:  # each starts (imports, data, model) and trains its first epoch while the others wait
        sides[name] = Side(name, epochs, work, seed)
        sides[name].until("EPOCH")
    for epoch in range(1, epochs):
        order = names[epoch % len(names):] + names[:epoch % len(names)]
        for name in order:
            sides[name].resume()
            sides[name].until("EPOCH")
    results = {}
    for name in names:  # one at a time: test evaluation, export
        sides[name].resume()
        results[name] = sides[name].result()
    return results


def speed(result, skip_first):
    epochs = result["epochs"][1:] if skip_first and len(result["epochs"]) > 1 else result["epochs"]
    return sum(e["tokens_per_second"] for e in epochs) / len(epochs)


def report(results, epochs):
    """Print the per-epoch table and the ratios; return the table's columns and rows, and the figures."""
    names = list(results)
    ratios = [("adaptive", other) for other in ("full", "torch") if other in results]
    columns = ["epoch", *[f"{n} {c}" for n in names for c in ("tokens/s", "val ppl")],
               *[f"{a} / {b}" for a, b in ratios]]
    rows = []
    for i, epoch in enumerate(zip(*(results[n]["epochs"] for n in names)), 1):
        tps = {n: e["tokens_per_second"] for n, e in zip(names, epoch)}
        rows.append([i, *[v for e in epoch for v in (e["tokens_per_second"], e["val_perplexity"])],
                     *[tps[a] / tps[b] for a, b in ratios]])
    print(" | ".join(columns))
    for row in rows:
        print(" | ".join(f"{v:,.2f}" if isinstance(v, float) else str(v) for v in row))
    figures = {}
    for skip_first, label in ((False, "all epochs"), (True, "after the first epoch")):
        if skip_first and epochs < 2:
            continue
        s = {n: speed(results[n], skip_first) for n in names}
        for (a, b), target in zip(ratios, (" (target >= 2)", " (target >= 2.5)")):
            figures[f"tokens/s {a} / {b}, {label}{target}"] = s[a] / s[b]
        if "torch" in s:
            figures[f"tokens/s full / torch, {label}"] = s["full"] / s["torch"]
    figures[f"test perplexity {', '.join(names)}"] = ", ".join(f"{results[n]['test_perplexity']:.1f}" for n in names)
    figures["test perplexity adaptive / full (target <= 1.03)"] = \
        results["adaptive"]["test_perplexity"] / results["full"]["test_perplexity"]
    figures[f"peak memory MiB {', '.join(names)}"] = ", ".join(f"{results[n]['peak_mib']:.0f}" for n in names)
    if "torch" not in results:
        figures["PyTorch side"] = "not run: torch is not installed"
    for name, value in figures.items():
        print(f"{name}: {value:.3f}" if isinstance(value, float) else f"{name}: {value}")
    return columns, rows, figures


def run_arguments(description, epochs, train_tokens, held_out_tokens, sides=None):
    """The options of a run on this split (``bench/distribute.py`` uses them too), with its defaults."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--epochs", type=int, default=epochs)
    parser.add_argument("--train-tokens", type=int, default=train_tokens,
                        help="training tokens per epoch, the same share from each training file (default: %(default)s)")
    parser.add_argument("--held-out-tokens", type=int, default=held_out_tokens,
                        help="tokens of the validation part and of the test part each (default: %(default)s)")
    parser.add_argument("--quick", action="store_true",
                        help=f"a check that the script runs, its figures rough: {QUICK}")
    parser.add_argument("--seed", type=int, default=lm.SEED)
    parser.add_argument("--only", choices=sides, help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    record.add_argument(parser)
    return parser


def main(argv=None):
    parser = run_arguments(__doc__.splitlines()[0], epochs=3, train_tokens=400_000, held_out_tokens=40_000, sides=SIDES)
    args = parser.parse_args(argv)
    if args.only:
        work = Path(args.work)
        run = (lambda: run_torch(args.epochs, work, args.seed)) if args.only == "torch" else \
            (lambda: run_ours(args.only, args.epochs, work, args.seed))
        print("RESULT " + json.dumps(run()), flush=True)
        return
    if not DATA.is_dir():
        sys.exit(f"{DATA} is not here")
    if args.quick:
        vars(args).update(QUICK)
    names = SIDES if importlib.util.find_spec("torch") else SIDES[:2]
    if len(names) < len(SIDES):
        print("PyTorch is not installed (pip install torch==2.13.0): its side is left out", file=sys.stderr)
    with tempfile.TemporaryDirectory() as work:
        split, vocab_size, counted = prepare(Path(work), args.train_tokens, args.held_out_tokens)
        for part, files in split.items():
            print(f"{part}: {len(files)} file(s): {', '.join(files)}")
        title = (f"Gutenberg, LSTM 2x200, bptt 35, batch 20, vocabulary {vocab_size:,} (min count {MIN_COUNT}, "
                 f"{counted:,} training tokens counted); {args.train_tokens:,} training tokens per epoch, "
                 f"{args.held_out_tokens:,} per held-out part, {args.epochs} epoch(s); cutoffs "
                 f"{','.join(map(str, CUTOFFS))}")
        print(title)
        columns, rows, figures = report(run_sides(names, args.epochs, Path(work), args.seed), args.epochs)
    figures.update({f"{part} files": ", ".join(files) for part, files in split.items() if part != "train"})
    record.save("scale", [record.table(title, columns, rows)], figures, argv, args.results)


if __name__ == "__main__":
    main()

"""``evaluate`` beside training on the same model: evaluation at forward speed (#17.3).

Trains the stream recipe (LSTM 2x200, embedding 200, bptt 35, batch 20,
dropout 0.2, SGD lr 20, clip 0.25) for one epoch on the first ``--files``
files of ``../shared/data/gutenberg`` (sorted by name; vocabulary with every
word kept, ``build-dict --min-count 0``), then ``evaluate``s the next file,
held out: as ``evaluate`` does by default (rows side by side, each after a
burn-in) and with ``--rows 1`` (every token with its whole history).  Each
step is the command line in its own process, as a user runs it.  Prints the
training tokens/s (the epoch's own figure from ``history.json``), each
evaluation's tokens/s (its own: loading the model is left out), the ratio
(target >= 2.5) and both perplexities, whose difference is what the burn-in
leaves of the rows' missing history.

    .venv/bin/python bench/evaluate.py [--files 6] [--results DIR]
"""
import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "gutenberg"
sys.path.insert(0, str(ROOT))
from bench import record  # noqa: E402
from bench.serve import cli  # noqa: E402

RECIPE = ["--objective", "stream", "--arch", "lstm", "--layers", "2", "--embedding", "200", "--hidden", "200",
          "--bptt", "35", "--batch-size", "20", "--dropout", "0.2", "--optimizer", "sgd",
          "--learning-rate", "20", "--clip-norm", "0.25", "--epochs", "1", "--seed", "1111"]
TARGET = 2.5


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=6, help="gutenberg files to train on (default: %(default)s)")
    record.add_argument(parser)
    args = parser.parse_args(argv)
    files = sorted(DATA.glob("*.txt"))
    if len(files) <= args.files:
        sys.exit(f"{DATA} has {len(files)} files; --files must leave one to hold out")
    train_files, heldout = files[:args.files], files[args.files]
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        corpus = work / "corpus"
        corpus.mkdir()
        for f in train_files:
            (corpus / f.name).symlink_to(f)
        glob, vocab, model = str(corpus / "*.txt"), work / "vocab.txt", work / "lm"
        cli("build-dict", "--corpus", glob, "--vocab", vocab, "--min-count", "0")
        cli("train", "--corpus", glob, "--vocab", vocab, "--model-dir", model, *RECIPE)
        history = json.loads((model / "history.json").read_text())
        train_speed = history["tokens_per_second"][-1]
        runs = {name: json.loads(cli("evaluate", "--model-dir", model, "--corpus", heldout, "--json", *flags))
                for name, flags in (("rows", []), ("one row", ["--rows", "1"]))}
    rows = [[name, r["tokens"], r["tokens_per_second"], r["tokens_per_second"] / train_speed, r["perplexity"]]
            for name, r in runs.items()]
    title = (f"LSTM 2x200 stream recipe, 1 epoch on {args.files} gutenberg files ({train_speed:,.0f} training "
             f"tokens/s), evaluate on {heldout.name}")
    print(title)
    print(f"{'evaluate':>8} | {'tokens':>8} {'tokens/s':>9} {'/ train':>7} {'perplexity':>10}")
    for name, tokens, speed, ratio, ppl in rows:
        print(f"{name:>8} | {tokens:>8,} {speed:>9,.0f} {ratio:>7.2f} {ppl:>10.2f}")
    ratio = runs["rows"]["tokens_per_second"] / train_speed
    gap = runs["rows"]["perplexity"] / runs["one row"]["perplexity"] - 1
    print(f"evaluate / training tokens/s: {ratio:.2f} (target >= {TARGET}); perplexity, rows vs one row: "
          f"{gap:+.2e} relative")
    record.save("evaluate", [record.table(title, ["evaluate", "tokens", "tokens/s", "/ training tokens/s",
                                                  "perplexity"], rows)],
                {"training tokens/s": train_speed,
                 f"evaluate / training tokens/s (target >= {TARGET})": ratio,
                 "perplexity, rows / one row - 1": f"{gap:+.2e}"}, argv, args.results)


if __name__ == "__main__":
    main()

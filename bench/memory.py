"""Working memory of a training run, lm_app beside PyTorch: peak resident memory minus the framework's import floor (#17.4).

Every figure comes from a process of its own: the import floors (``import
tensorflow``; ``import torch``), lm_app's ``train`` on the stream recipe
(LSTM 2x200, bptt 35, batch 20) and the PyTorch reference
(``bench/torch_lm.py``) on the same tokens.  lm_app's process samples its
``VmRSS`` every 10 ms and names the phase it is in (imports, vocabulary and
data, model, first steps with their tracing, the epoch, evaluation, export),
so the report says where its memory goes.  Corpora: Shakespeare (one epoch,
then the test evaluation and the export), and with ``--gutenberg`` the 35
gutenberg files at 1x and 4x, where each side stops after ``--seconds`` of
training: what grows with the corpus is read before the first step.

    .venv/bin/python bench/memory.py [--gutenberg] [--seconds 30]

Needs ``pip install torch==2.13.0`` (CPU) for the PyTorch side.
"""
import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT))
from bench import record  # noqa: E402

RECIPE = dict(batch_size=20, bptt=35, emsize=200, nhid=200, nlayers=2, dropout=0.2, lr=20.0, clip=0.25)
SHAKESPEARE = DATA / "shakespeare"


def splits(corpus):
    """``(train, valid, test, mode)``: Shakespeare's own three files (Penn Treebank format, as bench/lm.py
    reads them), or a folder of plain text that ``train`` splits 8:1:1 (valid and test None)."""
    if corpus == "shakespeare":
        return (*(str(SHAKESPEARE / f"{split}.txt") for split in ("train", "valid", "test")), "pretokenized")
    return corpus, None, None, "words"


def status_mib(field):
    """``VmRSS`` or ``VmHWM`` of this process, in MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


class Phases:
    """A thread that samples ``VmRSS`` and keeps the highest value seen in each named phase."""

    def __init__(self, first):
        self.order, self.peak, self.phase = [], {}, None
        self.enter(first)
        threading.Thread(target=self.sample, daemon=True).start()

    def enter(self, name):
        if name not in self.peak:
            self.order.append(name)
            self.peak[name] = 0.0
        self.phase = name
        self.peak[name] = max(self.peak[name], status_mib("VmRSS"))

    def sample(self):
        while True:
            self.peak[self.phase] = max(self.peak[self.phase], status_mib("VmRSS"))
            time.sleep(0.01)

    def report(self):
        self.enter(self.phase)
        return [[name, self.peak[name]] for name in self.order]


def during(phases, owner, attr, name, after=None):
    """Name the phase of every call of ``owner.attr`` (and the one after it, ``after``)."""
    fn = getattr(owner, attr)

    def wrapped(*args, **kwargs):
        phases.enter(name)
        try:
            return fn(*args, **kwargs)
        finally:
            if after:
                phases.enter(after)

    setattr(owner, attr, wrapped)


def stop_after(seconds):
    """End the training with a KeyboardInterrupt (as Ctrl-C does) ``seconds`` from now."""
    def interrupt(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGALRM, interrupt)
    signal.alarm(seconds)


def run_ours(corpus, seconds, work):
    phases = Phases("import tensorflow")
    import tensorflow  # noqa: F401

    phases.enter("import lm_app (keras)")
    from lm_app import corpus as lm_corpus, export, plot, train as train_module
    from lm_app.config import TrainConfig
    from lm_app.trainer import Trainer

    phases.enter("vocabulary")
    train, valid, test, mode = splits(corpus)
    vocab = lm_corpus.build_vocabulary(train, min_count=0, mode=mode)
    vocab.save(work / "vocab.txt")
    during(phases, train_module, "make_objective", "data (token ids, split, rows)", "setup")
    during(phases, train_module, "Trainer", "model, optimizer", "setup")
    during(phases, Trainer, "evaluate", "evaluation", "after evaluation")
    during(phases, export, "export", "export (SavedModel)", "after export")
    during(phases, plot, "curves_png", "curves.png (matplotlib)", "after plot")
    init = Trainer.__init__

    def instrumented(self, *args, **kwargs):
        init(self, *args, **kwargs)
        steps, calls = self.train_steps, []

        def train_steps(*a):
            if not calls and seconds:
                stop_after(seconds)
            phases.enter("first steps (tracing)" if not calls else "epoch")
            calls.append(1)
            return steps(*a)

        self.train_steps = train_steps

    Trainer.__init__ = instrumented
    cfg = TrainConfig(corpus=train, valid_corpus=valid, test_corpus=test, vocab=str(work / "vocab.txt"), model_dir=str(work / "lm"), objective="stream",
                      arch="lstm", layers=2, embedding=200, hidden=200, bptt=35, batch_size=20, dropout=0.2,
                      optimizer="sgd", learning_rate=20.0, clip_norm=0.25, epochs=1, seed=1111)
    try:
        train_module.train(cfg, verbose=0, log=lambda *a: None)
    except KeyboardInterrupt:
        phases.enter("stopped")
    return {"peak_mib": status_mib("VmHWM"), "phases": phases.report(), "vocab": len(vocab)}


def word_language_model_ids(files, vocab, mode):
    """The ids as PyTorch's ``word_language_model`` (data.py) holds them: a tensor per line, then one int64 tensor."""
    import torch

    from lm_app import text

    lines = []
    for path in files:
        with open(path, encoding="utf-8") as f:
            for line in f:
                lines.append(torch.tensor(vocab.ids(text.tokenize(line, mode)), dtype=torch.int64))
    return torch.cat(lines).numpy()


def run_torch(corpus, seconds, work):
    import bench.torch_lm as torch_lm
    from lm_app import corpus as lm_corpus

    train, valid, test, mode = splits(corpus)
    vocab = lm_corpus.build_vocabulary(train, min_count=0, mode=mode)
    if valid:
        train_ids, valid_ids, test_ids = (word_language_model_ids([f], vocab, mode) for f in (train, valid, test))
    else:
        ids = word_language_model_ids(lm_corpus.find_files(train), vocab, mode)
        n = len(ids)
        train_ids, valid_ids, test_ids = ids[:n * 8 // 10], ids[n * 8 // 10:n * 9 // 10], ids[n * 9 // 10:]
    if seconds:
        stop_after(seconds)
    try:
        torch_lm.run(train_ids, valid_ids, test_ids, len(vocab), epochs=1, **RECIPE, log=lambda *a: None)
    except KeyboardInterrupt:
        pass
    return {"peak_mib": status_mib("VmHWM"), "vocab": len(vocab)}


def run_floor(framework):
    __import__(framework)
    return {"peak_mib": status_mib("VmHWM")}


def child(*args):
    """One measurement in a fresh process; its RESULT line."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, __file__, "--only", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=ROOT)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    sys.exit(f"{' '.join(map(str, args))} failed:\n{proc.stderr[-3000:]}")


def repeated(folder, times, work):
    """A folder whose files are those of ``folder``, each ``times`` times over: a corpus ``times`` as large."""
    out = work / f"x{times}"
    out.mkdir()
    for path in sorted(folder.glob("*.txt")):
        (out / path.name).write_text(path.read_text(encoding="utf-8") * times, encoding="utf-8")
    return str(out / "*.txt")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gutenberg", action="store_true", help="also gutenberg at 1x and 4x")
    parser.add_argument("--seconds", type=int, default=30, help="training seconds on gutenberg (default: %(default)s)")
    parser.add_argument("--only", nargs="+", help=argparse.SUPPRESS)
    record.add_argument(parser)
    args = parser.parse_args(argv)
    if args.only:
        side, *rest = args.only
        with tempfile.TemporaryDirectory() as work:
            if side == "floor":
                result = run_floor(rest[0])
            else:
                result = {"ours": run_ours, "torch": run_torch}[side](rest[0], int(rest[1]), Path(work))
        print("RESULT " + json.dumps(result), flush=True)
        return
    floors = {name: child("floor", name)["peak_mib"] for name in ("tensorflow", "torch")}
    print(f"import floors: tensorflow {floors['tensorflow']:.0f} MiB, torch {floors['torch']:.0f} MiB")
    with tempfile.TemporaryDirectory() as work:
        corpora = [("Shakespeare, 1 epoch", "shakespeare", 0)]
        if args.gutenberg:
            corpora += [(f"gutenberg {times}x, {args.seconds} s of training",
                         repeated(DATA / "gutenberg", times, Path(work)), args.seconds) for times in (1, 4)]
        rows, phase_tables = [], []
        for name, corpus, seconds in corpora:
            ours, ref = child("ours", corpus, seconds), child("torch", corpus, seconds)
            mine, theirs = ours["peak_mib"] - floors["tensorflow"], ref["peak_mib"] - floors["torch"]
            rows.append([name, ours["vocab"], ours["peak_mib"], mine, ref["peak_mib"], theirs, mine / theirs])
            print(f"{name} (vocabulary {ours['vocab']:,}): lm_app peak {ours['peak_mib']:.0f} MiB, working "
                  f"{mine:.0f}; torch peak {ref['peak_mib']:.0f}, working {theirs:.0f}; ratio {mine / theirs:.2f} "
                  "(target <= 1)")
            for phase, peak in ours["phases"]:
                print(f"    {phase:<40} {peak:>6.0f} MiB ({peak - floors['tensorflow']:+.0f})")
            phase_tables.append(record.table(f"lm_app's highest VmRSS per phase, {name}", ["phase", "MiB", "above the floor"],
                                             [[p, m, m - floors["tensorflow"]] for p, m in ours["phases"]]))
    figures = {"import floor MiB, tensorflow": floors["tensorflow"], "import floor MiB, torch": floors["torch"]}
    if args.gutenberg:
        figures["lm_app peak 4x / 1x (target <= 1.05)"] = rows[2][2] / rows[1][2]
        figures["torch peak 4x / 1x"] = rows[2][4] / rows[1][4]
    record.save("memory", [record.table("peak resident memory and working memory (peak minus the import floor), MiB",
                                        ["corpus", "vocabulary", "lm_app peak", "lm_app working", "torch peak",
                                         "torch working", "lm_app / torch working"], rows), *phase_tables],
                figures, argv, args.results)


if __name__ == "__main__":
    main()

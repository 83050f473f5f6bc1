import contextlib
import fcntl
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests import forks

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(params=["native", "xla"])
def native_or_xla(request, monkeypatch):
    """Run a test once with lm_app's native kernels (where they build) and once with the XLA paths."""
    from lm_app import native

    if request.param == "xla":
        monkeypatch.setattr(native, "ops", lambda: None)
    elif native.ops() is None:
        pytest.skip("the native kernels are not built on this machine")
    return request.param


def shared_file(*parts):
    """A file of ../shared/data, or a clean skip on a machine that has none."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.is_file():
        pytest.skip(f"{path} is not here (../shared is only beside the repository in CI)")
    return path


def run_cli(*args, cwd=None, timeout=600):
    """Run ``python -m lm_app`` as a user would, in its own process (forked: see tests/forks.py)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    return forks.run([sys.executable, "-m", "lm_app", *map(str, args)], cwd=cwd or ROOT,
                     env=env, capture_output=True, text=True, timeout=timeout)


def exit_code_of_main(args):
    """``lm_app.cli.main(args)`` in this process, and its exit code, argparse's exits included."""
    from lm_app.cli import main

    try:
        return main([str(a) for a in args])
    except SystemExit as e:  # argparse's errors and --help
        return e.code


def run_cli_in_process(*args, cwd=None, stdin=None):
    """``lm_app.cli.main`` in this process, answered as :func:`run_cli` answers (returncode, stdout, stderr).

    For a test whose point is not the process (exit codes of a real run, signals, what the
    TensorFlow import prints, a process without lm_app): it saves the TensorFlow import a new
    process pays. ``stdin`` (bytes) is what the command reads for ``-``.
    """
    out, err = io.StringIO(), io.StringIO()
    saved_stdin, saved_cwd = sys.stdin, os.getcwd()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            os.chdir(cwd or saved_cwd)  # not contextlib.chdir: Python 3.10 has none
            if stdin is not None:
                sys.stdin = io.TextIOWrapper(io.BytesIO(stdin))
            code = exit_code_of_main(args)
    finally:
        sys.stdin = saved_stdin
        os.chdir(saved_cwd)
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def assert_usage_error(proc, fragment):
    """Exit code 2, and stderr is exactly one line that names the problem."""
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    assert len(lines) == 1, proc.stderr
    assert fragment in lines[0], lines[0]


def cycle_corpus(folder, repeats=60):
    """A corpus whose next word is fixed by the last five, though not by the last one alone.

    ``the`` is followed by a different word each time it appears in the cycle, so
    only a model that uses context beyond one word can reach 100%.
    """
    cycle = ("the cat sat on the mat and the dog ran to the park while the bird sang "
             "over the house near the river").split()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for part in range(2):
        lines = [" ".join(cycle) for _ in range(repeats)]
        (folder / f"part{part}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def tiny_corpus(work, repeats=60):
    """The cycle corpus in ``work`` and its vocabulary, built by the CLI: ``(glob, vocab path)``."""
    glob = str(cycle_corpus(Path(work) / "corpus", repeats) / "*.txt")
    vocab = Path(work) / "vocab.txt"
    built = run_cli("build-dict", "--corpus", glob, "--vocab", vocab)
    assert built.returncode == 0, built.stderr
    return glob, vocab


def train_cli(glob, vocab, model_dir, *flags, run=None):
    """``train`` as a user runs it (``run``: :func:`run_cli`, or :func:`run_cli_in_process`).

    Fails the test with its stderr if it fails.
    """
    proc = (run or run_cli)("train", "--corpus", glob, "--vocab", vocab, "--model-dir", model_dir, *flags)
    assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture(scope="session")
def window_rnn(tmp_path_factory):
    """A tiny window rnn (3 epochs on the cycle corpus), trained once for the run: its folder.

    Shared by several test files to train once: tests only read it; one that
    changes a model works on a copy (``shutil.copytree``).
    """
    def build(work):
        glob, vocab = tiny_corpus(work)
        proc = run_cli_in_process("train", "--corpus", glob, "--vocab", vocab, "--model-dir", work / "lm",
                                  "--epochs", 3, "--embedding", 8, "--hidden", 16, "--top-k", 5, "--seed", 3)
        assert proc.returncode == 0, proc.stderr

    return built_once(tmp_path_factory, "window_rnn", build) / "lm"


@pytest.fixture(scope="session")
def one_epoch(tmp_path_factory):
    """One epoch of a tiny model (top-k 4), trained by the train command once for the run: its folder and output."""
    from lm_app.cli import main

    def build(work):
        glob, vocab = tiny_corpus(work, repeats=20)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = main(["train", "--corpus", glob, "--vocab", str(vocab), "--model-dir", str(work / "lm"),
                         "--epochs", "1", "--embedding", "8", "--hidden", "8", "--top-k", "4"])
        assert code == 0
        (work / "train.out").write_text(out.getvalue())

    work = built_once(tmp_path_factory, "one_epoch", build)
    return {"dir": work / "lm", "stdout": (work / "train.out").read_text()}


def built_once(tmp_path_factory, name, build):
    """The folder ``build(folder)`` filled, once for the whole run, whichever xdist worker asks first.

    Each worker sets up its own session fixtures; a model that several files read
    is trained once this way, the other worker waiting on a file lock for it.
    """
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # this run's folder, above each worker's own
    folder = root / f"once-{name}"
    with open(root / f"once-{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / ".built").exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            build(folder)
            (folder / ".built").touch()
    return folder


def trained_metrics(model_dir):
    """What ``train`` returned for the run in ``model_dir`` (it writes the same to metrics.json)."""
    return json.loads((Path(model_dir) / "metrics.json").read_text())


def main_in_process(*args, capsys):
    """``lm_app.cli.main`` in this process: ``(exit code, stdout, stderr)``.

    Much faster than a subprocess for errors found before TensorFlow loads.
    """
    code = exit_code_of_main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


def assert_one_line_error(code, err, command, fragment):
    """Exit code 2 and one stderr line ``lm_app COMMAND: error: ...`` that holds ``fragment``."""
    lines = err.strip().splitlines()
    assert code == 2, (code, err)
    assert len(lines) == 1 and lines[0].startswith(f"lm_app {command}: error: "), err
    assert fragment in lines[0], lines[0]


def stream_settings(work):
    """The stream model's settings: an LSTM on the cycle corpus in ``work`` with 3-token chunks."""
    from lm_app.config import TrainConfig

    return TrainConfig(corpus=str(work / "corpus" / "*.txt"), vocab=str(work / "vocab.txt"),
                       model_dir=str(work / "lm"), objective="stream", arch="lstm", bptt=3, batch_size=4,
                       embedding=16, hidden=32, layers=1, epochs=6, learning_rate=0.02, seed=3, patience=10)


@pytest.fixture(scope="session")
def stream_model(tmp_path_factory):
    """A small stream LSTM trained once for the run: ``(folder, settings, metrics)``; tests only read it."""
    from lm_app import corpus
    from lm_app.train import train

    def build(work):
        glob = str(cycle_corpus(work / "corpus", repeats=40) / "*.txt")
        corpus.build_vocabulary(glob, min_count=3).save(work / "vocab.txt")
        cfg = stream_settings(work)
        epochs = []
        train(cfg, verbose=0, log=lambda *a: None, on_epoch=epochs.append)
        history = json.loads((work / "lm" / "history.json").read_text())
        assert [e["val_loss"] for e in epochs] == history["val_loss"] and len(epochs) == cfg.epochs
        assert all(e["tokens_per_second"] > 0 for e in epochs)

    work = built_once(tmp_path_factory, "stream", build)
    return work, stream_settings(work), trained_metrics(work / "lm")


def train_on_cycle(work, name, **settings):
    """``train`` in-process on the cycle corpus (built in ``work`` once): ``(metrics, model folder)``."""
    from lm_app import corpus
    from lm_app.config import TrainConfig
    from lm_app.train import train

    glob = str(work / "corpus" / "*.txt")
    if not (work / "vocab.txt").exists():
        cycle_corpus(work / "corpus")
        corpus.build_vocabulary(glob, min_count=3).save(work / "vocab.txt")
    settings = dict(dict(embedding=16, hidden=48, batch_size=32, learning_rate=0.01, epochs=3,
                         patience=4, seed=7, top_k=5), **settings)
    cfg = TrainConfig(corpus=glob, vocab=str(work / "vocab.txt"), model_dir=str(work / name), **settings)
    return train(cfg, verbose=0, log=lambda *a: None), work / name


@pytest.fixture(scope="session")
def attention_model(tmp_path_factory):
    """An --arch attention model trained once for the run: ``(metrics, folder)``."""
    work = built_once(tmp_path_factory, "attention",
                      lambda w: train_on_cycle(w, "lm", arch="attention", cell="gru", score="additive"))
    return trained_metrics(work / "lm"), work / "lm"


@pytest.fixture(scope="session")
def seq2seq_model(tmp_path_factory):
    """An --arch seq2seq model writing 3 words, trained once for the run: ``(metrics, folder)``."""
    work = built_once(tmp_path_factory, "seq2seq",
                      lambda w: train_on_cycle(w, "lm", arch="seq2seq", cell="gru", score="general",
                                               target_len=3))
    return trained_metrics(work / "lm"), work / "lm"


# The slowest files first (by CPU time).  `make test` hands whole files to its two workers in
# collection order (--dist loadfile); a long file that starts last keeps one worker busy after
# the other is done.
SLOW_FIRST = ("test_native.py", "test_train.py", "test_distribute.py", "test_resume.py",
              "test_dialogue/test_train.py", "test_end_to_end.py", "test_quiet.py", "test_data.py", "test_export.py",
              "test_predict.py", "test_vocab_name.py", "test_evaluate.py", "test_serve/test_app.py",
              "test_cli.py", "test_robustness.py", "layers/test_seq2seq.py", "test_word2vec/test_train.py",
              "test_models.py", "test_config.py")


def pytest_configure(config):
    # pytest-xdist sorts the files by their number of tests unless told not to, which put files of
    # few but slow tests (test_train.py) last: SLOW_FIRST's order is the one to keep.
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(items):
    rank = {f"tests/{name}": i for i, name in enumerate(SLOW_FIRST)}
    # A stable sort: every file keeps its own order.
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(SLOW_FIRST)))

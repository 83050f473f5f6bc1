import os
import subprocess
import sys
from pathlib import Path

import pytest

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
    """Run ``python -m lm_app`` as a user would, in its own process."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, "-m", "lm_app", *map(str, args)], cwd=cwd or ROOT,
                          env=env, capture_output=True, text=True, timeout=timeout)


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


def train_cli(glob, vocab, model_dir, *flags):
    """``train`` as a user runs it; fails the test with its stderr if it fails."""
    proc = run_cli("train", "--corpus", glob, "--vocab", vocab, "--model-dir", model_dir, *flags)
    assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture(scope="session")
def window_rnn(tmp_path_factory):
    """A tiny window rnn (3 epochs on the cycle corpus), trained once for the session: its folder.

    Shared by several test files to train once: tests only read it; one that
    changes a model works on a copy (``shutil.copytree``).
    """
    work = tmp_path_factory.mktemp("window_rnn")
    glob, vocab = tiny_corpus(work)
    train_cli(glob, vocab, work / "lm", "--epochs", 3, "--embedding", 8, "--hidden", 16,
              "--top-k", 5, "--seed", 3)
    return work / "lm"


def main_in_process(*args, capsys):
    """``lm_app.cli.main`` in this process: ``(exit code, stdout, stderr)``.

    Much faster than a subprocess for errors found before TensorFlow loads.
    """
    from lm_app.cli import main

    try:
        code = main([str(a) for a in args])
    except SystemExit as e:  # argparse's errors and --help
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def assert_one_line_error(code, err, command, fragment):
    """Exit code 2 and one stderr line ``lm_app COMMAND: error: ...`` that holds ``fragment``."""
    lines = err.strip().splitlines()
    assert code == 2, (code, err)
    assert len(lines) == 1 and lines[0].startswith(f"lm_app {command}: error: "), err
    assert fragment in lines[0], lines[0]

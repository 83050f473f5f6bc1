"""#12.19: output a person can read: train's epoch lines and summary, predict's echo of its input."""
import json
import os
import re
import subprocess
import sys

import pytest

from lm_app.atomic import FolderLock
from lm_app.predict import SHOWN_CHARS, shown
from tests.conftest import ROOT, run_cli, tiny_corpus, train_cli

pytestmark = pytest.mark.slow

LONG = ("zebra-crossing émigré " * 50_000) + "\nthe cat   sat on\nthe"  # 1.1 MB, several lines


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One epoch of a tiny model: its train output and its folder."""
    work = tmp_path_factory.mktemp("predict")
    glob, vocab = tiny_corpus(work, repeats=20)
    proc = train_cli(glob, vocab, work / "lm", "--epochs", 1, "--embedding", 8, "--hidden", 8,
                     "--top-k", 4)
    return {"dir": work / "lm", "stdout": proc.stdout}


def predict_stdin(model_dir, text, *flags):
    proc = subprocess.run([sys.executable, "-m", "lm_app", "predict", "--model-dir", str(model_dir),
                           *flags, "-"], input=text.encode("utf-8"), capture_output=True, timeout=300,
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.decode("utf-8")


def test_the_summary_of_a_one_epoch_run_is_grammatical(trained):
    assert "(picked the weights: 1 epoch)" in trained["stdout"] and "epochs)" not in trained["stdout"]


def test_the_epoch_line_rounds_the_speed(trained):
    out = trained["stdout"]
    assert "seconds:" not in out and "tokens_per_second" not in out, out
    assert re.search(r"^training: \d+\.\d s, [\d,]+ tokens/s$", out, re.M), out
    assert re.search(r"^\d+/\d+ - .* - loss: \d\.\d{4} - .* - val_loss: \d\.\d{4}", out, re.M), out


def test_a_finished_model_folder_leaves_no_lock_file(trained, tmp_path):
    assert not list(trained["dir"].parent.glob("*.lock")) and not list(trained["dir"].glob("*lock"))
    lock = tmp_path / ".lm.lock"
    for _ in range(2):  # released and removed, then taken again
        with FolderLock(tmp_path / "lm"):
            assert lock.read_text() == f"process {os.getpid()}\n"
        assert not lock.exists()


def test_the_lock_holds_while_an_export_replaces_the_folder(tmp_path):
    """An export swaps the model folder for a new one: a second run must still be refused."""
    from lm_app.errors import UsageError

    model_dir = tmp_path / "lm"
    with FolderLock(model_dir):
        model_dir.rename(tmp_path / "lm.old")  # what export's swap does
        model_dir.mkdir()
        with pytest.raises(UsageError, match="is in use by process"):
            with FolderLock(model_dir):
                pass


@pytest.mark.parametrize("text, echo", [
    ("The dog  ran\nto the ", "The dog ran to the"),  # short: whole, whitespace collapsed
    ("x" * 10 + " the" * 100, "... " + " ".join(["the"] * (SHOWN_CHARS // 4))),  # cut at a word
    ("y" * 1000, "... " + "y" * (SHOWN_CHARS + 1)),  # one long word: its end
])
def test_what_is_shown_of_a_text(text, echo):
    assert shown(text) == echo


def test_a_long_text_is_echoed_by_its_end_only(trained):
    table = predict_stdin(trained["dir"], LONG)
    first = table.splitlines()[0]
    assert first.startswith("Prediction: ... ") and " the cat sat on the " in first, first
    assert len(table) < 1000, len(table)
    result = json.loads(predict_stdin(trained["dir"], LONG, "--json"))
    assert result["input"].startswith("... ") and result["input"].endswith(" the cat sat on the")
    assert len(result["input"]) <= SHOWN_CHARS + 4
    assert result["context"] == ["the", "cat", "sat", "on", "the"]


def test_json_output_has_the_shape_the_readme_shows(trained):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    documented = json.loads(readme[readme.index("**predict**"):].split("```json\n", 1)[1].split("```")[0])
    proc = run_cli("predict", "--model-dir", trained["dir"], "--json", "--top-k", 2, "on the")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert list(result) == list(documented) == ["input", "context", "prediction", "top_k"]
    assert set(documented["top_k"][0]) == {"word", "prob"}
    assert result["input"] == "on the" and result["context"] == ["on", "the"]
    assert [set(item) for item in result["top_k"]] == [{"word", "prob"}] * 2
    assert result["prediction"] == result["top_k"][0]["word"]


def test_top_k_says_its_maximum(trained):
    help_text = " ".join(run_cli("predict", "--help").stdout.split())
    assert "at most the model's exported top-k (train --top-k)" in help_text
    proc = run_cli("predict", "--model-dir", trained["dir"], "--top-k", 5, "the")
    assert proc.returncode == 2 and "--top-k is at most 4 for this model" in proc.stderr


def test_the_default_top_k_fits_a_model_that_exports_fewer(trained):
    """The default lists five words, or all a model exports when that is fewer: never an error."""
    result = json.loads(predict_stdin(trained["dir"], "the cat", "--json"))
    assert len(result["top_k"]) == 4


def test_generate_echoes_the_end_of_a_long_text_only(trained):
    proc = subprocess.run([sys.executable, "-m", "lm_app", "generate", "--model-dir", str(trained["dir"]),
                           "--words", "3", "--greedy", "-"], input=LONG.encode("utf-8"), capture_output=True,
                          timeout=300, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    line = proc.stdout.decode("utf-8").strip()
    assert line.startswith("... ") and "the cat sat on the " in line, line[:300]
    assert len(line) < SHOWN_CHARS + 100

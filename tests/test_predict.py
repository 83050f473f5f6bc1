"""``predict`` (lm_app/predict.py): its echo of its input (#12.19), its JSON, its top-k, attention and seq2seq output.

The command runs in-process (run_cli_in_process): the same command lines, exit codes and output
as a process, without a TensorFlow import each.
"""
import json

import numpy as np
import pytest

from lm_app.predict import SHOWN_CHARS, shown
from tests.conftest import ROOT, assert_usage_error, run_cli_in_process

pytestmark = pytest.mark.slow

LONG = ("zebra-crossing émigré " * 50_000) + "\nthe cat   sat on\nthe"  # 1.1 MB, several lines


@pytest.fixture(scope="module")
def trained(one_epoch):
    """One epoch of a tiny model that exports its top 4 words: its folder."""
    return one_epoch


def predict_stdin(model_dir, text, *flags):
    proc = run_cli_in_process("predict", "--model-dir", model_dir, *flags, "-", stdin=text.encode("utf-8"))
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


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
    proc = run_cli_in_process("predict", "--model-dir", trained["dir"], "--json", "--top-k", 2, "on the")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert list(result) == list(documented) == ["input", "context", "prediction", "top_k"]
    assert set(documented["top_k"][0]) == {"word", "prob"}
    assert result["input"] == "on the" and result["context"] == ["on", "the"]
    assert [set(item) for item in result["top_k"]] == [{"word", "prob"}] * 2
    assert result["prediction"] == result["top_k"][0]["word"]


def test_top_k_says_its_maximum(trained):
    help_text = " ".join(run_cli_in_process("predict", "--help").stdout.split())
    assert "at most the model's exported top-k (train --top-k)" in help_text
    proc = run_cli_in_process("predict", "--model-dir", trained["dir"], "--top-k", 5, "the")
    assert proc.returncode == 2 and "--top-k is at most 4 for this model" in proc.stderr


def test_the_default_top_k_fits_a_model_that_exports_fewer(trained):
    """The default lists five words, or all a model exports when that is fewer: never an error."""
    result = json.loads(predict_stdin(trained["dir"], "the cat", "--json"))
    assert len(result["top_k"]) == 4


def test_the_attention_lm_learns_and_shows_its_weights(attention_model, tmp_path):
    metrics, model_dir = attention_model
    assert metrics["test"]["accuracy"] >= 0.95
    png = tmp_path / "attention.png"
    proc = run_cli_in_process("predict", "--model-dir", model_dir, "--json", "--show-attention",
                   "--attention-png", png, "the bird sang over the")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["prediction"] == "house"
    weights = np.array(result["attention"])
    assert weights.shape == (5,) and weights.sum() == pytest.approx(1, abs=1e-5)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    short = json.loads(run_cli_in_process("predict", "--model-dir", model_dir, "--json", "--show-attention",
                               "--attention-png", png, "on the").stdout)
    assert len(short["attention"]) == 2 and sum(short["attention"]) == pytest.approx(1, abs=1e-5)
    table = run_cli_in_process("predict", "--model-dir", model_dir, "--show-attention", "--attention-png", png,
                    "the bird sang over the").stdout
    assert "Attention over the context" in table and "sang" in table


def test_the_seq2seq_model_writes_the_next_words(seq2seq_model, tmp_path):
    metrics, model_dir = seq2seq_model
    assert metrics["test"]["accuracy"] >= 0.95  # per word, over the three written words
    proc = run_cli_in_process("predict", "--model-dir", model_dir, "--json", "--show-attention",
                   "--attention-png", tmp_path / "a.png", "the dog ran to the")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["continuation"] == "park while the"
    assert result["prediction"] == "park"
    assert np.array(result["attention"]).shape == (3, 5)
    assert np.allclose(np.sum(result["attention"], axis=1), 1, atol=1e-5)
    assert "Continuation: the dog ran to the park while the" in run_cli_in_process(
        "predict", "--model-dir", model_dir, "the dog ran to the").stdout


def test_show_attention_needs_an_attention_model(window_rnn):
    model_dir = window_rnn
    assert_usage_error(run_cli_in_process("predict", "--model-dir", model_dir, "--show-attention", "the"),
                       "has no attention")

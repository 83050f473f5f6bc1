"""#12.1: every reader of a model folder works whatever the vocabulary file was called.

One model is trained from ``runs/v.tsv`` (neither named ``vocab`` nor ending
in ``.txt``), killed after its first save and resumed, so ``train --resume``
reads it too; then each command reads the model folder.
"""
import json
import signal

import pytest

from tests.conftest import cycle_corpus, run_cli, run_cli_in_process
from tests.test_resume import start_training, wait_for
from tests.test_serve.test_app import Server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    work = tmp_path_factory.mktemp("vocab_name")
    glob = str(cycle_corpus(work / "corpus", repeats=25) / "*.txt")
    vocab = work / "runs" / "v.tsv"
    built = run_cli("build-dict", "--corpus", glob, "--vocab", vocab)
    assert built.returncode == 0, built.stderr
    model_dir = work / "lm"
    args = ["--corpus", glob, "--vocab", vocab, "--epochs", 2, "--save-every", 1, "--embedding", 8,
            "--hidden", 16, "--batch-size", 32, "--top-k", 5, "--seed", 5]
    proc = start_training(model_dir, args)
    wait_for(model_dir / "checkpoints" / "checkpoint", proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    resumed = run_cli_in_process("train", "--model-dir", model_dir, "--resume", *args)
    assert resumed.returncode == 0, resumed.stderr
    return {"dir": model_dir, "glob": glob, "resumed": resumed.stdout}


def test_resume_exports_the_vocabulary_as_vocab_txt(model):
    assert "resuming at epoch 1" in model["resumed"]
    assert sorted(p.name for p in (model["dir"] / "assets").iterdir()) == ["vocab.txt"]
    assert (model["dir"] / "vocab.txt").is_file() and (model["dir"] / "vocab.json").is_file()


def test_predict(model):
    proc = run_cli_in_process("predict", "--model-dir", model["dir"], "--json", "the dog ran to the")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["context"] == ["the", "dog", "ran", "to", "the"]


def test_generate(model):
    proc = run_cli_in_process("generate", "--model-dir", model["dir"], "--json", "--words", 3, "--seed", 1,
                   "the dog ran to the")
    assert proc.returncode == 0, proc.stderr
    assert len(json.loads(proc.stdout)["words"]) == 3


def test_evaluate(model):
    proc = run_cli_in_process("evaluate", "--model-dir", model["dir"], "--corpus", model["glob"], "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["tokens"] > 0


def test_export_tflite(model, tmp_path):
    out = tmp_path / "m.tflite"
    proc = run_cli_in_process("export", "--format", "tflite", "--model-dir", model["dir"], "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes()[4:8] == b"TFL3"


def test_serve(model):
    server = Server(model["dir"])
    try:
        status, body = server.predict({"instances": ["the dog ran to the"]})
    finally:
        code, _, stderr = server.stop()
    assert status == 200, body
    assert len(body["predictions"][0]["words"]) == 5
    assert code in (0, -signal.SIGTERM), stderr

"""``train --objective dialogue`` as a user runs it: the loop trains, scores, reports VHRED's KL and exports."""
import json
import os
import subprocess
import sys

import pytest

from tests.conftest import run_cli, train_cli
from tests.test_dialogue.common import write_dialogues

WORDS = "alpha bravo charlie delta echo foxtrot golf hotel india juliet".split()


def synthetic_dialogues(n=60, turns=4):
    """Each turn repeats the previous one's words shifted by one place in WORDS: a learnable pattern."""
    return [[" ".join(WORDS[(d + t + i) % len(WORDS)] for i in range(3)) for t in range(turns)] for d in range(n)]


@pytest.fixture(scope="module")
def vhred(tmp_path_factory):
    """A tiny VHRED trained for 2 epochs by the CLI: its folder (tests only read it)."""
    work = tmp_path_factory.mktemp("vhred")
    corpus = write_dialogues(work / "dialogues.txt", synthetic_dialogues())
    built = run_cli("build-dict", "--corpus", corpus, "--vocab", work / "vocab.txt", "--min-count", 0)
    assert built.returncode == 0, built.stderr
    train_cli(corpus, work / "vocab.txt", work / "model", "--objective", "dialogue", "--arch", "vhred",
              "--cell", "lstm", "--embedding", 8, "--hidden", 8, "--epochs", 2, "--batch-size", 16,
              "--kl-anneal-steps", 10, "--seed", 5)
    return work / "model"


def test_training_reports_the_bound_and_the_kl_per_response(vhred):
    metrics = json.loads((vhred / "metrics.json").read_text())
    config = json.loads((vhred / "config.json").read_text())
    assert config["objective"] == "dialogue" and config["arch"] == "vhred" and config["context_turns"] == 2
    for split in ("valid", "test"):
        assert metrics[split]["kl_per_response"] > 0 and metrics[split]["loss"] > 0


PLAIN_TF = """
import sys, json
import tensorflow as tf
model = tf.saved_model.load(sys.argv[1])
serve = model.signatures["serving_default"]
out = serve(turns=tf.constant([["alpha bravo charlie", "bravo charlie delta"], ["golf hotel india", ""]]))
sample = model.signatures["sample"](turns=tf.constant([["echo"]]), temperature=tf.constant(1.0))
assert not any(name.startswith("lm_app") for name in sys.modules)
print(json.dumps({"response": [r.decode() for r in out["response"].numpy()],
                  "log_prob": out["log_prob"].numpy().tolist(), "sample": sample["response"].numpy()[0].decode()}))
"""


def test_the_savedmodel_answers_a_batch_of_contexts_without_lm_app(vhred, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-c", PLAIN_TF, str(vhred)], cwd=tmp_path, env=dict(env, TF_CPP_MIN_LOG_LEVEL="3"),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(out["response"]) == 2 and all(lp < 0 for lp in out["log_prob"])
    for response in out["response"] + [out["sample"]]:
        assert set(response.split()) <= set(WORDS) | {"<unk>"}
        assert "<pad>" not in response

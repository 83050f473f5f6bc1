"""``train --objective dialogue``: the loop trains, scores, reports VHRED's KL and exports; ``respond`` answers."""
import dataclasses
import io
import json
import os
import subprocess
import sys

from lm_app.config import TrainConfig
from tests import forks
from tests.conftest import assert_one_line_error, main_in_process
from tests.test_dialogue.common import WORDS


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
    proc = forks.run([sys.executable, "-c", PLAIN_TF, str(vhred)], cwd=tmp_path,
                          env=dict(env, TF_CPP_MIN_LOG_LEVEL="3"),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(out["response"]) == 2 and all(lp < 0 for lp in out["log_prob"])
    for response in out["response"] + [out["sample"]]:
        assert set(response.split()) <= set(WORDS)  # never <pad>, <unk> or </s>


def test_respond_answers_from_arguments_and_from_stdin(vhred, capsys, monkeypatch):
    code, out, err = main_in_process("respond", "alpha bravo charlie", "bravo charlie delta", "--model-dir", vhred,
                                     "--json", capsys=capsys)
    assert code == 0, err
    answer = json.loads(out)
    assert answer["turns"] == ["alpha bravo charlie", "bravo charlie delta"] and len(answer["responses"]) == 1
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"alpha bravo charlie\n\nbravo charlie delta\n")))
    code, out, err = main_in_process("respond", "-", "--model-dir", vhred, "--samples", "3", "--json", capsys=capsys)
    assert code == 0, err
    answer = json.loads(out)
    assert answer["turns"] == ["alpha bravo charlie", "bravo charlie delta"]  # the blank line is no turn
    assert len(answer["responses"]) == 3
    assert all(set(r["response"].split()) <= set(WORDS) for r in answer["responses"])



def test_sampled_answers_use_generates_filters_and_a_seed_replays_them(vhred, capsys):
    def answers(*flags):
        code, out, err = main_in_process("respond", "alpha bravo charlie", "--model-dir", vhred, "--json", *flags,
                                         capsys=capsys)
        assert code == 0, err
        return json.loads(out)["responses"]

    seeded = answers("--samples", 4, "--top-k", 3, "--top-p", 0.9, "--temperature", 1.5, "--seed", 8)
    assert len(seeded) == 4 and all(set(r["response"].split()) <= set(WORDS) and r["log_prob"] < 0 for r in seeded)
    assert answers("--samples", 4, "--top-k", 3, "--top-p", 0.9, "--temperature", 1.5, "--seed", 8) == seeded
    code, _, err = main_in_process("respond", "alpha", "--top-k", 2, capsys=capsys)
    assert_one_line_error(code, err, "respond", "--top-k acts with --samples only")
    code, _, err = main_in_process("respond", "alpha", "--samples", 2, "--top-p", 0, capsys=capsys)
    assert_one_line_error(code, err, "respond", "--top-p must be in (0, 1]")



def test_beam_answers_and_its_refusals(vhred, capsys):
    code, out, err = main_in_process("respond", "alpha bravo charlie", "--model-dir", vhred, "--beam", 3, "--json",
                                     capsys=capsys)
    assert code == 0, err
    [answer] = json.loads(out)["responses"]
    assert set(answer["response"].split()) <= set(WORDS) and answer["log_prob"] < 0
    again = main_in_process("respond", "alpha bravo charlie", "--model-dir", vhred, "--beam", 3, "--json",
                            capsys=capsys)
    assert json.loads(again[1])["responses"] == [answer]  # z at the prior's mean: no randomness
    code, _, err = main_in_process("respond", "alpha", "--beam", 2, "--samples", 2, capsys=capsys)
    assert_one_line_error(code, err, "respond", "--beam and --samples do not go together")
    code, _, err = main_in_process("respond", "alpha", "--beam", 2, "--top-k", 2, capsys=capsys)
    assert_one_line_error(code, err, "respond", "--beam does not sample")


def test_respond_refuses_no_turns_and_a_model_that_is_not_a_dialogue_model(tmp_path, capsys):
    code, _, err = main_in_process("respond", capsys=capsys)
    assert_one_line_error(code, err, "respond", "no turns")
    language_model = tmp_path / "lm"
    language_model.mkdir()
    (language_model / "config.json").write_text(json.dumps(dataclasses.asdict(TrainConfig())))
    code, _, err = main_in_process("respond", "hello", "--model-dir", language_model, capsys=capsys)
    assert_one_line_error(code, err, "respond", "holds a --objective window model, not a dialogue model")
    code, _, err = main_in_process("respond", "hello", "--model-dir", tmp_path / "nothing", capsys=capsys)
    assert_one_line_error(code, err, "respond", "no trained dialogue model in")
    code, _, err = main_in_process("respond", "hello", "--samples", "0", capsys=capsys)
    assert code == 2 and "--samples: must be a positive integer" in err


def test_chat_answers_each_line_keeps_the_context_and_resets(vhred, capsys, monkeypatch):
    typed = "alpha bravo charlie\n!!!\n/reset\ngolf hotel india\n"
    monkeypatch.setattr("sys.stdin", io.StringIO(typed))
    code, out, err = main_in_process("chat", "--model-dir", vhred, capsys=capsys)
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 4 and lines[1].startswith("(no words") and lines[2] == "(context cleared)"
    assert all(set(lines[i].split()) <= set(WORDS) for i in (0, 3))
    code, _, err = main_in_process("chat", "--model-dir", vhred.parent, capsys=capsys)
    assert_one_line_error(code, err, "chat", "no trained dialogue model")


def test_evaluate_reports_the_bound_the_kl_and_distinct_n(vhred, capsys):
    corpus_file = vhred.parent / "dialogues.txt"
    code, out, err = main_in_process("evaluate", "--model-dir", vhred, "--corpus", corpus_file, "--json", capsys=capsys)
    assert code == 0, err
    report = json.loads(out)
    assert report["responses"] == 60 * 2 and report["perplexity_is_bound"] and report["kl_per_response"] > 0
    assert 0 < report["distinct_1"] <= report["distinct_2"] <= 1  # few words, so fewer distinct words than pairs
    # Five answers share fewer bigrams than all contexts' answers pooled.
    assert report["distinct_2"] < report["distinct_2_per_context"] <= 1
    assert report["cross_entropy"] > 0 and report["samples_per_context"] == 5
    code, out, err = main_in_process("evaluate", "--model-dir", vhred, "--corpus", corpus_file, capsys=capsys)
    assert code == 0 and "perplexity" in out and "an upper bound" in out and "KL per response" in out, err


def test_distinct_n_counts_distinct_n_grams_over_all():
    from lm_app.dialogue.evaluate import distinct

    assert distinct([[1, 2, 1], [1, 2]], 1) == 2 / 5
    assert distinct([[1, 2, 1], [1, 2]], 2) == 2 / 3
    assert distinct([[1]], 2) == 0.0


def test_distinct_per_context_counts_within_each_contexts_answers():
    from lm_app.dialogue.evaluate import distinct, distinct_per_context

    answers = [[1, 2], [1, 2], [1, 2], [3, 4]]  # two contexts of two answers each
    assert distinct_per_context(answers, 2, 2) == (1 / 2 + 2 / 2) / 2
    assert distinct(answers, 2) == 2 / 4  # pooled, the first context's bigram repeats across contexts too


def test_predict_and_generate_refuse_a_dialogue_model_in_one_line(vhred, capsys):
    for command in ("predict", "generate"):
        code, _, err = main_in_process(command, "alpha bravo", "--model-dir", vhred, capsys=capsys)
        assert_one_line_error(code, err, command, "holds a dialogue model: use respond or chat")


def test_ctrl_c_ends_a_chat_cleanly(vhred):
    """A real process: after an answer, SIGINT ends the chat with exit code 0 and no traceback."""
    import signal

    from tests.conftest import ROOT

    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    chat = forks.Popen([sys.executable, "-m", "lm_app", "chat", "--model-dir", str(vhred)], cwd=ROOT, env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        chat.stdin.write("alpha bravo charlie\n")
        chat.stdin.flush()
        answer = chat.stdout.readline()  # the chat is waiting for the next line now
        chat.send_signal(signal.SIGINT)
        out, err = chat.communicate(timeout=60)
    finally:
        chat.kill()
    assert set(answer.split()) <= set(WORDS) and answer.strip()
    assert chat.returncode == 0 and "Traceback" not in err and "KeyboardInterrupt" not in err, err

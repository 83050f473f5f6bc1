"""--arch attention and --arch seq2seq: they learn, export, predict, show their attention and decode."""
import json
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from lm_app import corpus
from lm_app.config import TrainConfig
from lm_app.generate import Generator
from lm_app.models import AttentionLM
from lm_app.train import train
from tests.conftest import assert_usage_error, cycle_corpus, run_cli

pytestmark = pytest.mark.slow


def recall_task(n, rng, keys=12, fillers=10, window=10):
    """Windows that start with a key word, then fillers; the next word is the key again."""
    key = rng.integers(2, 2 + keys, n)
    x = rng.integers(2 + keys, 2 + keys + fillers, (n, window))
    x[:, 0] = key
    return x.astype("int32"), key.astype("int32")


def test_attention_recalls_the_first_word_of_the_window():
    rng = np.random.default_rng(0)
    keras.utils.set_random_seed(0)
    x, y = recall_task(4000, rng)
    x_test, y_test = recall_task(500, rng)
    model = AttentionLM(24, arch="gru", embedding=16, hidden=32, score="general")
    model.compile(keras.optimizers.Adam(0.01),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=64, epochs=6, verbose=0)
    logits, weights = model.attend(x_test)
    assert np.mean(np.argmax(logits, -1) == y_test) >= 0.95
    assert np.mean(np.argmax(weights, -1) == 0) > 0.9  # it learnt to look back at the key


@pytest.fixture(scope="module")
def cycle(tmp_path_factory):
    work = tmp_path_factory.mktemp("attn")
    glob = str(cycle_corpus(work / "corpus") / "*.txt")
    corpus.build_vocabulary(glob, min_count=3).save(work / "vocab.txt")
    return work, glob


def trained(work, glob, name, **settings):
    settings = dict(dict(embedding=16, hidden=48, batch_size=32, learning_rate=0.01, epochs=12,
                         patience=4, seed=7, top_k=5), **settings)
    cfg = TrainConfig(corpus=glob, vocab=str(work / "vocab.txt"), model_dir=str(work / name), **settings)
    return train(cfg, verbose=0, log=lambda *a: None), work / name


@pytest.fixture(scope="module")
def attention_model(cycle):
    return trained(*cycle, "attention", arch="attention", cell="gru", score="additive")


@pytest.fixture(scope="module")
def seq2seq_model(cycle):
    return trained(*cycle, "seq2seq", arch="seq2seq", cell="gru", score="general", target_len=3)


def test_the_attention_lm_learns_and_shows_its_weights(attention_model, tmp_path):
    metrics, model_dir = attention_model
    assert metrics["test"]["accuracy"] >= 0.95
    png = tmp_path / "attention.png"
    proc = run_cli("predict", "--model-dir", model_dir, "--json", "--show-attention",
                   "--attention-png", png, "the bird sang over the")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["prediction"] == "house"
    weights = np.array(result["attention"])
    assert weights.shape == (5,) and weights.sum() == pytest.approx(1, abs=1e-5)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    short = json.loads(run_cli("predict", "--model-dir", model_dir, "--json", "--show-attention",
                               "--attention-png", png, "on the").stdout)
    assert len(short["attention"]) == 2 and sum(short["attention"]) == pytest.approx(1, abs=1e-5)
    table = run_cli("predict", "--model-dir", model_dir, "--show-attention", "--attention-png", png,
                    "the bird sang over the").stdout
    assert "Attention over the context" in table and "sang" in table


def test_the_seq2seq_model_writes_the_next_words(seq2seq_model, tmp_path):
    metrics, model_dir = seq2seq_model
    assert metrics["test"]["accuracy"] >= 0.95  # per word, over the three written words
    proc = run_cli("predict", "--model-dir", model_dir, "--json", "--show-attention",
                   "--attention-png", tmp_path / "a.png", "the dog ran to the")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["continuation"] == "park while the"
    assert result["prediction"] == "park"
    assert np.array(result["attention"]).shape == (3, 5)
    assert np.allclose(np.sum(result["attention"], axis=1), 1, atol=1e-5)
    assert "Continuation: the dog ran to the park while the" in run_cli(
        "predict", "--model-dir", model_dir, "the dog ran to the").stdout


def test_the_seq2seq_saved_model_decodes_alone_as_generate_greedy_does(seq2seq_model, tmp_path):
    _, model_dir = seq2seq_model
    prompts = ["the dog ran to the", "sat on the mat and", "near the"]
    # The command for one prompt; the others through the Generator it runs (a process each costs seconds).
    cli = json.loads(run_cli("generate", "--model-dir", model_dir, "--greedy", "--words", 3, "--json",
                             prompts[0]).stdout)["continuation"]
    generator = Generator(model_dir)
    greedy = [generator.generate(p, 3, greedy=True)["continuation"] for p in prompts]
    assert cli == greedy[0]
    script = textwrap.dedent(f"""
        import json, sys
        import tensorflow as tf
        serve = tf.saved_model.load({str(model_dir)!r}).signatures["serving_default"]
        out = serve(text=tf.constant({prompts!r}))
        assert not [m for m in sys.modules if m.startswith(("lm_app", "tensorflow_text"))]
        print(json.dumps([c.decode() for c in out["continuation"].numpy()]))
        print(json.dumps([float(v) for v in out["log_prob"].numpy()]))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    continuations, log_probs = (json.loads(line) for line in proc.stdout.strip().splitlines()[-2:])
    assert continuations == greedy
    assert continuations[0] == "park while the"
    assert all(lp <= 0 for lp in log_probs)


def test_seq2seq_generates_past_its_target_length(seq2seq_model):
    _, model_dir = seq2seq_model
    out = Generator(model_dir).generate("the cat sat on the", 7, greedy=True)
    assert out["continuation"] == "mat and the dog ran to the"


@pytest.mark.parametrize("which", ["attention", "seq2seq"])
def test_decoding_options_agree_where_they_must(attention_model, seq2seq_model, which):
    model_dir = {"attention": attention_model, "seq2seq": seq2seq_model}[which][1]
    gen = Generator(model_dir)
    prompt = "while the bird"
    greedy = gen.generate(prompt, 6, greedy=True)
    assert gen.generate(prompt, 6, temperature=0.0)["words"] == greedy["words"]
    assert gen.generate(prompt, 6, top_k=1, seed=5)["words"] == greedy["words"]
    assert gen.generate(prompt, 6, beam=1)["words"] == greedy["words"]
    assert gen.generate(prompt, 6, beam=3)["log_prob"] >= greedy["log_prob"] - 1e-4
    hot = dict(temperature=3.0, seed=11)
    assert gen.generate(prompt, 6, **hot) == gen.generate(prompt, 6, **hot)


def test_generate_from_the_command_line_is_reproducible(attention_model):
    _, model_dir = attention_model
    args = ("generate", "--model-dir", model_dir, "--words", 8, "--temperature", 2.0, "--seed", 3,
            "--json", "the cat")
    first, second = run_cli(*args), run_cli(*args)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout) == json.loads(second.stdout)
    assert len(json.loads(first.stdout)["words"]) == 8
    assert_usage_error(run_cli("generate", "--model-dir", model_dir, "--top-p", 1.5, "the"), "--top-p")
    assert_usage_error(run_cli("generate", "--model-dir", model_dir, "  "), "empty")


def test_show_attention_needs_an_attention_model(cycle):
    work, glob = cycle
    _, model_dir = trained(work, glob, "plain", arch="rnn", epochs=1)
    assert_usage_error(run_cli("predict", "--model-dir", model_dir, "--show-attention", "the"),
                       "has no attention")

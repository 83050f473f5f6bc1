"""``evaluate`` (lm_app/evaluate.py): perplexity on held-out text is exp of the mean negative log-likelihood."""
import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from lm_app import corpus, evaluate, text
from lm_app.config import TrainConfig
from lm_app.models import StreamLM
from lm_app.train import train
from tests.conftest import cycle_corpus, shared_file


def test_evaluate_perplexity_is_exp_of_the_mean_nll(stream_model, tmp_path):
    work, cfg, _ = stream_model
    heldout = tmp_path / "heldout.txt"
    heldout.write_text("the cat sat on the mat and the zebra ran to the park\n" * 3, encoding="utf-8")
    report = evaluate.evaluate(work / "lm", str(heldout))
    model, _, vocab = evaluate.load_trained(work / "lm")
    ids = np.array(vocab.ids(text.tokenize(heldout.read_text())), np.int32)
    logits, _ = model(tf.constant(ids[None, :-1]))
    log_probs = tf.nn.log_softmax(logits[0]).numpy().astype(np.float64)
    nll = -log_probs[np.arange(len(ids) - 1), ids[1:]].mean()
    assert report["tokens"] == len(ids) - 1
    assert report["cross_entropy"] == pytest.approx(nll, rel=1e-4)
    assert report["perplexity"] == pytest.approx(np.exp(nll), rel=1e-4)
    assert report["unk_share"] == pytest.approx(np.mean(ids[1:] == text.UNK_ID))


def test_evaluate_a_window_model_by_hand(tmp_path):
    glob = str(cycle_corpus(tmp_path / "corpus", repeats=10) / "*.txt")
    vocab = corpus.build_vocabulary(glob, min_count=3)
    vocab.save(tmp_path / "vocab.txt")
    cfg = TrainConfig(corpus=glob, vocab=str(tmp_path / "vocab.txt"), model_dir=str(tmp_path / "lm"),
                      embedding=8, hidden=8, epochs=1, batch_size=32)
    train(cfg, verbose=0, log=lambda *a: None)
    heldout = tmp_path / "h.txt"
    heldout.write_text("the dog ran to the park while the bird sang over", encoding="utf-8")
    report = evaluate.evaluate(tmp_path / "lm", str(heldout))
    model, _, _ = evaluate.load_trained(tmp_path / "lm")
    ids = np.array(vocab.ids(text.tokenize(heldout.read_text())), np.int32)
    windows = np.stack([ids[i:i + 5] for i in range(len(ids) - 5)])
    log_probs = tf.nn.log_softmax(model(tf.constant(windows))).numpy().astype(np.float64)
    nll = -log_probs[np.arange(len(windows)), ids[5:]].mean()
    assert report["tokens"] == len(ids) - 5
    assert report["perplexity"] == pytest.approx(np.exp(nll), rel=1e-4)


def test_a_few_steps_on_ptb_lower_the_test_perplexity(tmp_path):
    valid, test = shared_file("ptb", "ptb.valid.txt"), shared_file("ptb", "ptb.test.txt")
    vocab = corpus.build_vocabulary(str(valid), min_count=0, mode="pretokenized")
    vocab.save(tmp_path / "vocab.txt")
    cfg = TrainConfig(corpus=str(valid), vocab=str(tmp_path / "vocab.txt"),
                      model_dir=str(tmp_path / "lm"), objective="stream", arch="lstm", bptt=35,
                      batch_size=32, embedding=32, hidden=32, layers=1, epochs=1,
                      optimizer="sgd", learning_rate=10.0, clip_norm=0.25, seed=1)
    train(cfg, verbose=0, log=lambda *a: None)
    untrained = StreamLM(len(vocab), "lstm", 32, 32, 1, 0.0, seed=1)
    untrained(tf.zeros([1, 1], tf.int32))
    before = evaluate.score(untrained, dataclasses.replace(cfg), vocab, [str(test)])
    after = evaluate.evaluate(tmp_path / "lm", str(test), pretokenized=True)
    assert after["tokens"] == before["tokens"] > 80_000
    assert after["perplexity"] < 0.5 * before["perplexity"], (before, after)
    assert after["unk_share"] > 0.02  # PTB's own <unk> tokens are kept, not renamed

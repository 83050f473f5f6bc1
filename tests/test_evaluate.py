"""``evaluate`` (lm_app/evaluate.py): perplexity on held-out text is exp of the mean negative log-likelihood."""
import dataclasses
import json

import numpy as np
import pytest
import tensorflow as tf

from lm_app import corpus, evaluate, text
from lm_app.config import TrainConfig
from lm_app.models import StreamLM
from lm_app.train import train
from tests.conftest import cycle_corpus, run_cli_in_process, shared_file


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


CYCLE = ("the cat sat on the mat and the dog ran to the park while the bird sang "
         "over the house near the river\n")


def memoryless(model):
    """``model`` with every recurrent kernel zero and forget gates shut: each step sees only its own input.

    Then where a row starts cannot change any score, so rows must equal the
    one-row definition to rounding.
    """
    for layer in model.rnns:
        units = layer.cell.units if hasattr(layer, "cell") else layer.units
        for weight in layer.weights:
            if "recurrent" in weight.name:
                weight.assign(np.zeros(weight.shape, np.float32))
            elif weight.name == "bias":
                bias = weight.numpy()
                bias[units:2 * units] = -100.0  # the forget gate's slice (gates i, f, c, o)
                weight.assign(bias)
    return model


def scores_match(a, b, rel):
    assert a["tokens"] == b["tokens"]
    for key in ("cross_entropy", "accuracy", "top5", "unk_share"):
        assert a[key] == pytest.approx(b[key], rel=rel), key


def test_rows_score_every_token_once_across_blocks_and_files(stream_model, tmp_path):
    """Several blocks of rows, a ragged last block and files that end inside rows: the one-row figures."""
    work, cfg, _ = stream_model
    model, _, vocab = evaluate.load_trained(work / "lm")
    memoryless(model)
    files = []
    for i, repeats in enumerate((7, 1, 12)):  # 161, 25 and 280 tokens
        files.append(tmp_path / f"{i}.txt")
        files[-1].write_text(CYCLE * repeats + "a zebra\n" * i, encoding="utf-8")
    files = [str(f) for f in files]
    exact = evaluate.score(model, cfg, vocab, files, rows=1)
    rows = evaluate.score(model, cfg, vocab, files, rows=4, length=40, burn_in=10)  # 3 blocks, the last ragged
    assert exact["tokens"] == sum(len(text.tokenize(open(f).read())) for f in files) - 1
    assert exact["unk_share"] > 0
    scores_match(rows, exact, rel=1e-5)


def test_a_burn_in_gives_each_row_the_history_it_needs(stream_model, tmp_path):
    """A trained model, whose state matters: rows after a burn-in score as one row does.

    Without a burn-in the rows' first tokens are predicted from a blank state
    and the figure is tens of percent off; the state forgets its distant past
    geometrically, so 16 tokens of burn-in bring this model within rounding.
    """
    work, cfg, _ = stream_model
    model, _, vocab = evaluate.load_trained(work / "lm")
    heldout = tmp_path / "heldout.txt"
    heldout.write_text(CYCLE * 40 + "a zebra sat\n" + CYCLE * 20, encoding="utf-8")
    exact = evaluate.score(model, cfg, vocab, [str(heldout)], rows=1)
    blank = evaluate.score(model, cfg, vocab, [str(heldout)], rows=8, length=64, burn_in=0)
    warm = evaluate.score(model, cfg, vocab, [str(heldout)], rows=8, length=64, burn_in=16)
    assert blank["cross_entropy"] > 1.1 * exact["cross_entropy"]
    scores_match(warm, exact, rel=1e-5)


def test_a_corpus_shorter_than_the_rows_gets_fewer_rows(stream_model, tmp_path):
    """Rows are never shorter than the burn-in; a corpus shorter than two is one row, the exact definition."""
    work, cfg, _ = stream_model
    model, _, vocab = evaluate.load_trained(work / "lm")
    heldout = tmp_path / "heldout.txt"
    heldout.write_text(CYCLE * 3, encoding="utf-8")  # 69 tokens: 68 predictions
    blocks = list(evaluate.stream_rows([str(heldout)], vocab, rows=8, length=64, burn_in=16))
    assert [tuple(x.shape) for _, x, _, _ in blocks] == [(4, 17)]
    assert int(tf.reduce_sum(tf.cast(blocks[0][3], tf.int32))) == 68
    exact = evaluate.score(model, cfg, vocab, [str(heldout)], rows=1)
    scores_match(evaluate.score(model, cfg, vocab, [str(heldout)]), exact, rel=1e-6)  # 64 rows asked
    heldout.write_text("zebra sat\n", encoding="utf-8")
    assert evaluate.score(model, cfg, vocab, [str(heldout)])["tokens"] == 1


def test_a_file_boundary_is_not_a_row_boundary(stream_model, tmp_path):
    """Files are read as one stream: two files score as their concatenation, rows and state included."""
    work, cfg, _ = stream_model
    model, _, vocab = evaluate.load_trained(work / "lm")
    parts = [CYCLE * 5 + "a zebra sat\n", CYCLE * 4]
    for i, part in enumerate(parts):
        (tmp_path / f"{i}.txt").write_text(part, encoding="utf-8")
    (tmp_path / "whole.txt").write_text("".join(parts), encoding="utf-8")
    layout = dict(rows=3, length=40, burn_in=8)
    apart = evaluate.score(model, cfg, vocab, [str(tmp_path / f"{i}.txt") for i in range(2)], **layout)
    scores_match(apart, evaluate.score(model, cfg, vocab, [str(tmp_path / "whole.txt")], **layout), rel=1e-9)


def test_evaluate_rows_on_the_command_line(stream_model, tmp_path):
    """``--rows 1`` is the one-row definition; ``--rows 0`` is refused before anything loads."""
    work, cfg, _ = stream_model
    heldout = tmp_path / "heldout.txt"
    heldout.write_text(CYCLE * 3, encoding="utf-8")
    proc = run_cli_in_process("evaluate", "--model-dir", work / "lm", "--corpus", heldout, "--rows", "1", "--json")
    assert proc.returncode == 0, proc.stderr
    model, _, vocab = evaluate.load_trained(work / "lm")
    scores_match(json.loads(proc.stdout), evaluate.score(model, cfg, vocab, [str(heldout)], rows=1), rel=1e-9)
    assert run_cli_in_process("evaluate", "--model-dir", work / "lm", "--corpus", heldout, "--rows", "0").returncode == 2

"""The embedding scores of Liu et al. 2016 (Average, Greedy, Extrema) and evaluate --embeddings."""
import json

import numpy as np
import pytest

from lm_app.dialogue import embedding_metrics as m
from lm_app.word2vec.vectors import write_vectors
from tests.conftest import assert_one_line_error, main_in_process


def test_the_scores_by_their_definitions():
    response = np.array([[1.0, 0.0], [0.0, 2.0]])
    reference = np.array([[1.0, 1.0], [-3.0, 0.0]])
    s = m.scores(response, reference)
    # Average: the sums [1, 2] and [-2, 1] are orthogonal.
    assert s["average"] == pytest.approx(0.0, abs=1e-12)
    # Extrema: per dimension the largest magnitude: [1, 2] and [-3, 1].
    assert s["extrema"] == pytest.approx((-3 + 2) / (np.sqrt(5) * np.sqrt(10)))
    # Greedy: response words' best matches 1/sqrt(2) and 1/sqrt(2); reference words' 1/sqrt(2) and 0.
    assert s["greedy"] == pytest.approx((np.sqrt(0.5) + np.sqrt(0.5) / 2) / 2)
    same = m.scores(reference, reference)
    assert all(v == pytest.approx(1.0) for v in same.values())


def test_the_scorer_leaves_out_words_without_vectors_and_pairs_without_words(tmp_path):
    write_vectors(tmp_path / "v.txt", ["alpha", "bravo"], np.array([[1, 0], [0, 1]], np.float32))
    scorer = m.EmbeddingScorer(tmp_path / "v.txt", ["<pad>", "<unk>", "alpha", "bravo", "charlie"])
    scorer.add([2, 4], [2])  # charlie has no vector: alpha against alpha
    scorer.add([4], [2])  # nothing left of the answer: not scored
    scorer.add([3], [2])  # orthogonal
    r = scorer.result()
    assert (r["embedding_pairs"], r["embedding_pairs_skipped"]) == (2, 1)
    assert r["embedding_average"] == pytest.approx(0.5) and r["embedding_greedy"] == pytest.approx(0.5)


def test_evaluate_with_embeddings_scores_the_answers(vhred, tmp_path, capsys):
    vocab = [line.split("\t")[0] for line in (vhred / "vocab.txt").read_text().splitlines()]
    words = vocab[2:]
    write_vectors(tmp_path / "v.txt", words, np.random.default_rng(0).normal(size=(len(words), 8)).astype(np.float32))
    args = ("evaluate", "--model-dir", vhred, "--corpus", vhred.parent / "dialogues.txt")
    code, out, err = main_in_process(*args, "--embeddings", tmp_path / "v.txt", "--json", capsys=capsys)
    assert code == 0, err
    report = json.loads(out)
    assert report["embedding_pairs"] + report["embedding_pairs_skipped"] == report["responses"] * 5
    assert report["embedding_pairs"] > 0
    for name in m.NAMES:
        assert -1 <= report[f"embedding_{name}"] <= 1
    code, _, err = main_in_process(*args, "--embeddings", tmp_path / "missing.txt", capsys=capsys)
    assert_one_line_error(code, err, "evaluate", "missing.txt")

"""evaluate-embeddings' figures equal gensim's evaluate_word_pairs / evaluate_word_analogies on the same vectors."""
import numpy as np
import pytest

from lm_app.errors import UsageError
from lm_app.word2vec import evaluate
from lm_app.word2vec.vectors import write_vectors
from tests.test_embeddings.conftest import FILLER, PLANTED, analogy_pairs, planted_vectors

# gensim's formats: '#' comments, word<TAB>word<TAB>score; a bad line and an unknown word are skipped.
PAIRS = ("# a comment line\n"
         "King\tQueen\t8.5\nman\twoman\t8.5\nking\tapple\t1.0\nBoy\tgirl\t7.25\nprince\tking\t7.25\n"
         "river\tstone\t3.0\ncloud\twinter\t3.0\napple\tpear\t6.0\nlamp\tunknownword\t4.0\n"
         "not a valid line\n\nseven\tmusic\t0.5\nhorse\tbread\t2.0\ngreen\tsilver\t5.5\n")


def analogy_text():
    """Two sections: the planted analogies (mostly right) and filler ones (mostly wrong), with OOV and bad lines."""
    planted = [" ".join(q) for q in analogy_pairs()]
    rng = np.random.default_rng(2)
    filler = [" ".join(rng.choice(FILLER, 4, replace=False)) for _ in range(40)]
    return (": planted\n" + "\n".join(planted) + "\nMAN King woman Queen\nman king nosuchword queen\n"
            ": filler-words\n" + "\n".join(filler) + "\nonly three words\npear pear king king\n"
            ": empty-section\n")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("eval")
    (folder / "pairs.tsv").write_text(PAIRS, encoding="utf-8")
    (folder / "questions.txt").write_text(analogy_text(), encoding="utf-8")
    return folder


def vectors_file(folder, words, vectors):
    from gensim.models import KeyedVectors

    write_vectors(folder / "v.txt", words, vectors)
    return KeyedVectors.load_word2vec_format(str(folder / "v.txt"), binary=False)


def test_ranks_and_spearman_match_scipy_with_ties():
    from scipy import stats

    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 5, 40).astype(float), rng.normal(size=40)
    np.testing.assert_array_equal(evaluate.ranks(x), stats.rankdata(x))
    assert evaluate.spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)
    assert evaluate.pearson(x, y) == pytest.approx(stats.pearsonr(x, y).statistic, abs=1e-12)
    assert evaluate.pearson([1, 1, 1], [1, 2, 3]) is None and evaluate.spearman([1], [2]) is None


@pytest.mark.parametrize("seed", [0, 1])
def test_word_pairs_equal_gensims(files, tmp_path, seed):
    """#15: Spearman, Pearson and the out-of-vocabulary share, case-folded as gensim folds them."""
    words, vectors = planted_vectors(seed)
    gensim = vectors_file(tmp_path, words, vectors)
    pearson, spearman, oov_percent = gensim.evaluate_word_pairs(str(files / "pairs.tsv"))
    ours = evaluate.word_pairs(files / "pairs.tsv", evaluate.Vectors(words, vectors))
    assert ours["spearman"] == pytest.approx(spearman.statistic, abs=1e-6)
    assert ours["pearson"] == pytest.approx(pearson.statistic, abs=1e-6)
    assert ours["oov"] * 100 == pytest.approx(oov_percent)
    assert (ours["used"], ours["pairs"]) == (11, 12)


@pytest.mark.parametrize("variant", [False, True])
def test_word_analogies_equal_gensims(files, tmp_path, variant):
    """#15: 3CosAdd over every word, the query words excluded, OOV questions skipped: the same right answers.

    ``variant`` adds 'King', a rarer case variant of 'king': folded into king, it may not answer a question
    that has king among its query words (pear:pear = king:?, whose nearest word is King).
    """
    words, vectors = planted_vectors()
    if variant:
        king = vectors[words.index("king")]
        words, vectors = words + ["King"], np.vstack([vectors, king * 1.01 + 0.001]).astype(np.float32)
    gensim = vectors_file(tmp_path, words, vectors)
    score, sections = gensim.evaluate_word_analogies(str(files / "questions.txt"))
    ours = evaluate.word_analogies(files / "questions.txt", evaluate.Vectors(words, vectors))
    expected = {s["section"]: len(s["correct"]) for s in sections[:-1]}
    assert {name: s["correct"] for name, s in ours["sections"].items()} == expected
    assert {name: s["questions"] for name, s in ours["sections"].items()} == {
        s["section"]: len(s["correct"]) + len(s["incorrect"]) for s in sections[:-1]}
    assert ours["accuracy"] == pytest.approx(score)
    assert 0 < ours["correct"] < ours["used"] == ours["questions"] - 1  # one question has an unknown word
    assert ours["sections"]["empty-section"]["accuracy"] is None


def test_the_analogies_are_solved_in_batches(monkeypatch, files):
    """Batching (BATCH questions per matrix product) changes no answer."""
    vectors = evaluate.Vectors(*planted_vectors())
    whole = evaluate.word_analogies(files / "questions.txt", vectors)
    monkeypatch.setattr(evaluate, "BATCH", 3)
    assert evaluate.word_analogies(files / "questions.txt", vectors) == whole


@pytest.mark.parametrize("name, text, fragment", [
    ("pairs.tsv", "# only comments\n", "holds no word pairs"),
    ("q.txt", "a b c d\n: section\n", "line 1: a question before the first ': section' line"),
    ("q.txt", ": section\n", "holds no analogy questions"),
])
def test_a_file_without_pairs_or_questions_is_one_clear_line(tmp_path, name, text, fragment):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    read = evaluate.word_pairs if name == "pairs.tsv" else evaluate.word_analogies
    with pytest.raises(UsageError, match=fragment):
        read(path, evaluate.Vectors(*planted_vectors()))


def test_the_planted_vectors_answer_their_analogies():
    """The planted structure is what the figures above rest on: every planted analogy is right."""
    assert len(PLANTED) == 8
    vectors = evaluate.Vectors(*planted_vectors())
    questions = [[vectors.index[w.upper()] for w in q] for q in analogy_pairs()]
    assert (evaluate.answers(vectors, questions) == np.array(questions)[:, 3]).all()

"""The tf.data windows: exact contents, no crossing of files, a leak-free split."""
import collections

import pytest

from lm_app import corpus, data


def decode(ds, vocab):
    return [([vocab.tokens[i] for i in x.numpy()], vocab.tokens[int(y)]) for x, y in ds]


@pytest.fixture
def two_files(tmp_path):
    (tmp_path / "a.txt").write_text("A b, c\nd e f g\n", encoding="utf-8")
    (tmp_path / "b.txt").write_text("z y x w v u\n", encoding="utf-8")
    words = "a b c d e f g z y x w v u".split()
    vocab = corpus.Vocabulary.from_counts(collections.Counter(words), 0, {"mode": "words"})
    return corpus.find_files(str(tmp_path / "*.txt")), vocab


def test_windows_are_exact_and_never_cross_files(two_files):
    files, vocab = two_files
    got = decode(data.window_dataset(files, vocab, window=5, split="all"), vocab)
    assert got == [
        (["a", "b", "c", "d", "e"], "f"),
        (["b", "c", "d", "e", "f"], "g"),
        (["z", "y", "x", "w", "v"], "u"),
    ]


def test_windows_span_batches_of_lines(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "LINES_PER_BATCH", 2)
    (tmp_path / "a.txt").write_text("a\nb\nc\nd\ne\n", encoding="utf-8")
    vocab = corpus.Vocabulary.from_counts(collections.Counter("abcde"), 0, {"mode": "words"})
    got = decode(data.window_dataset([str(tmp_path / "a.txt")], vocab, 2, "all"), vocab)
    assert got == [(["a", "b"], "c"), (["b", "c"], "d"), (["c", "d"], "e")]


def test_split_is_four_to_one_by_blocks_with_no_overlap(tmp_path):
    words = [chr(97 + i // 26) + chr(97 + i % 26) for i in range(400)]  # aa, ab, ... (no digits)
    position = {w: i for i, w in enumerate(words)}
    (tmp_path / "a.txt").write_text(" ".join(words), encoding="utf-8")
    vocab = corpus.Vocabulary.from_counts(collections.Counter(words), 0, {"mode": "words"})
    files = [str(tmp_path / "a.txt")]
    window, block = 3, 20

    def positions(split):
        # each window is identified by the index of its first word
        return [position[vocab.tokens[x[0]]] for x, _ in
                data.window_dataset(files, vocab, window, split, 0.2, block)]

    train, valid = positions("train"), positions("valid")
    assert valid and train
    assert all((p // block) % 5 == 4 for p in valid)
    assert all((p // block) % 5 != 4 for p in train)
    # no validation word appears in any training window, and vice versa
    train_words = {p + k for p in train for k in range(window + 1)}
    valid_words = {p + k for p in valid for k in range(window + 1)}
    assert not train_words & valid_words
    assert 0.15 < len(valid) / (len(train) + len(valid)) < 0.25


def test_shuffling_is_deterministic_with_a_seed(two_files):
    files, vocab = two_files
    ds = data.window_dataset(files, vocab, 2, "all")

    def order(seed):
        return [int(y) for _, y in data.batched(ds, 1, shuffle=True, seed=seed).unbatch()]

    assert order(7) == order(7)
    assert sorted(order(7)) == sorted(order(8))

"""The vocabulary: the <= min-count rule, a deterministic order, a safe file format."""
import collections
import json
import os

import pytest

from lm_app import corpus, text
from lm_app.errors import UsageError
from tests.conftest import shared_file


def test_words_seen_min_count_times_or_fewer_become_unk():
    counts = collections.Counter({"four": 4, "three": 3, "one": 1, "five": 5, text.UNK: 2})
    vocab = corpus.Vocabulary.from_counts(counts, min_count=3)
    assert vocab.tokens == ["<pad>", "<unk>", "five", "four"]
    assert vocab.counts == [0, 3 + 1 + 2, 5, 4]
    assert vocab.ids(["four", "three", "zzz"]) == [3, 1, 1]


def test_order_is_count_descending_then_alphabetical():
    counts = collections.Counter({"b": 7, "a": 7, "c": 9, "d": 5})
    assert corpus.Vocabulary.from_counts(counts, min_count=0).tokens[2:] == ["c", "a", "b", "d"]


def test_build_save_load_round_trip(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.txt").write_text("The cat. The cat! the dog\nthe Cat", encoding="utf-8")
    (tmp_path / "sub" / "b.txt").write_text("the cat, a bird\n", encoding="utf-8")
    vocab = corpus.build_vocabulary(str(tmp_path / "**" / "*.txt"), min_count=3)
    assert vocab.tokens == ["<pad>", "<unk>", "the", "cat"]
    assert vocab.counts == [0, 3, 5, 4]
    vocab.save(tmp_path / "out" / "vocab.txt")
    assert (tmp_path / "out" / "vocab.txt").read_text(encoding="utf-8") == "<pad>\t0\n<unk>\t3\nthe\t5\ncat\t4\n"
    meta = json.loads((tmp_path / "out" / "vocab.json").read_text())
    assert meta["mode"] == "words" and meta["min_count"] == 3 and meta["tokens"] == 12
    assert meta["unk_tokens"] == 3 and len(meta["files"]) == 2
    again = corpus.Vocabulary.load(tmp_path / "out" / "vocab.txt")
    assert again.tokens == vocab.tokens and again.counts == vocab.counts


def test_a_vocabulary_edited_by_hand_is_refused(tmp_path):
    vocab = corpus.Vocabulary.from_counts(collections.Counter("a a a a b b b b".split()), 3,
                                          {"mode": "words"})
    vocab.save(tmp_path / "vocab.txt")
    with open(tmp_path / "vocab.txt", "a", encoding="utf-8") as f:
        f.write("extra\t9\n")
    with pytest.raises(UsageError, match="does not match"):
        corpus.Vocabulary.load(tmp_path / "vocab.txt")


def test_reading_streams_in_blocks_and_counts_the_same(tmp_path, monkeypatch):
    lines = [f"word{i % 7} and more words{i % 3}" for i in range(500)]
    (tmp_path / "big.txt").write_text("\n".join(lines), encoding="utf-8")
    monkeypatch.setattr(corpus, "_READ_CHUNK", 64)
    blocks = [block for block, _, _ in corpus.read_blocks(tmp_path / "big.txt")]
    assert len(blocks) > 50 and all(b.endswith("\n") for b in blocks[:-1])
    counts = corpus.count_tokens([tmp_path / "big.txt"])
    assert counts == collections.Counter(text.tokenize("\n".join(lines)))


@pytest.mark.parametrize("files, message", [
    ({}, "no files match"),
    ({"empty.txt": b""}, "has no words"),
    ({"digits.txt": b"123 456 !!!\n"}, "has no words"),
    ({"rare.txt": b"one two three\n"}, "all would be <unk>"),
    ({"bad.txt": b"caf\xe9 latin-1\n"}, "bad.txt is not valid utf-8"),
])
def test_bad_corpora_are_usage_errors(tmp_path, files, message):
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
    with pytest.raises(UsageError, match=message):
        corpus.build_vocabulary(str(tmp_path / "*.txt"))


def test_errors_replace_reads_bad_bytes(tmp_path):
    (tmp_path / "bad.txt").write_bytes(b"caf\xe9 " * 5)
    vocab = corpus.build_vocabulary(str(tmp_path / "*.txt"), errors="replace")
    assert "caf" in vocab.tokens


def test_pretokenized_mode_keeps_unk_and_adds_eos(tmp_path):
    (tmp_path / "ptb.txt").write_text(" a b <unk> \n" * 4, encoding="utf-8")
    vocab = corpus.build_vocabulary(str(tmp_path / "*.txt"), min_count=3, mode="pretokenized")
    assert vocab.tokens == ["<pad>", "<unk>", "<eos>", "a", "b"]
    assert vocab.counts[1] == 4


def test_shakespeare_train_needs_no_new_unknowns():
    """train.txt already maps words seen <= 3 times to <unk>, so our rule adds none."""
    path = shared_file("shakespeare", "train.txt")
    vocab = corpus.build_vocabulary(str(path), min_count=3, mode="pretokenized")
    literal_unk = sum(line.split().count("<unk>") for line in path.read_text().splitlines())
    assert vocab.counts[text.UNK_ID] == literal_unk
    assert all(n > 3 for n in vocab.counts[2:])


@pytest.fixture
def mixed_files(tmp_path):
    """Files that stress the cuts: empty, no final newline, one long line, non-ASCII, many lines."""
    contents = {
        "a.txt": "".join(f"Line {i} of a -- with words{i % 13} and Straße\n" for i in range(3000)),
        "b.txt": "",
        "c.txt": "one very long line " * 2000,
        "d.txt": "\n".join(f"émigré {i % 7} naïve caf\u00e9 -x <unk>" for i in range(2000)),
    }
    for name, body in contents.items():
        (tmp_path / name).write_text(body, encoding="utf-8")
    return [str(tmp_path / name) for name in sorted(contents)]


@pytest.mark.parametrize("workers", [2, 3, 7])
def test_shares_cover_every_byte_once_and_cut_after_newlines(mixed_files, workers):
    sizes = [os.path.getsize(f) for f in mixed_files]
    shares = corpus._shares(mixed_files, sizes, workers)
    assert 1 < len(shares) <= workers
    ranges = [r for share in shares for r in share]
    for path in mixed_files:
        data = open(path, "rb").read()
        mine = [(s, e) for p, s, e in ranges if p == path]
        assert b"".join(data[s:e] for s, e in mine) == data
        assert all(e == len(data) or data[e - 1:e] == b"\n" for _, e in mine)
    # A share overshoots its equal part by at most the line it had to finish.
    longest_line = max(len(line) for f in mixed_files for line in open(f, "rb"))
    assert max(sum(e - s for _, s, e in share) for share in shares) <= sum(sizes) / workers + longest_line


@pytest.mark.parametrize("mode", text.MODES)
def test_worker_processes_count_exactly_as_one_process(mixed_files, mode, monkeypatch):
    single = corpus.count_tokens(mixed_files, mode, workers=1)
    assert single == collections.Counter(
        t for f in mixed_files for t in text.tokenize(open(f, encoding="utf-8").read(), mode))
    monkeypatch.setattr(corpus, "PARALLEL_MIN_BYTES", 0)
    seen = []
    assert corpus.count_tokens(mixed_files, mode, progress=seen.append, workers=2) == single
    assert sum(seen) == sum(os.path.getsize(f) for f in mixed_files)


def test_worker_processes_report_the_first_bad_byte(tmp_path, monkeypatch):
    good = "fine words here\n" * 4000
    (tmp_path / "a.txt").write_text(good)
    (tmp_path / "b.txt").write_bytes(good.encode() + b"caf\xe9\n" + good.encode() + b"\xff\n")
    files = [str(tmp_path / "a.txt"), str(tmp_path / "b.txt")]
    with pytest.raises(UsageError) as single:
        corpus.count_tokens(files, workers=1)
    assert f"b.txt is not valid utf-8 (byte {len(good) + 3})" in str(single.value)
    monkeypatch.setattr(corpus, "PARALLEL_MIN_BYTES", 0)
    for workers in (2, 4):
        with pytest.raises(UsageError) as parallel:
            corpus.count_tokens(files, workers=workers)
        assert str(parallel.value) == str(single.value)


@pytest.mark.parametrize("workers", [1, 2])
def test_an_unknown_encoding_is_a_usage_error_for_any_corpus_size(mixed_files, workers, monkeypatch):
    monkeypatch.setattr(corpus, "PARALLEL_MIN_BYTES", 0)
    with pytest.raises(UsageError, match="unknown encoding 'no-such-codec'"):
        corpus.count_tokens(mixed_files, encoding="no-such-codec", workers=workers)

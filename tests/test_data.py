"""The tf.data windows: exact contents, no crossing of files, a leak-free split."""
import collections
import os
import sys
import tracemalloc

import numpy as np
import pytest

from lm_app import corpus, data, text
from lm_app.errors import UsageError
from tests import forks
from tests.conftest import ROOT


def decode(ds, vocab):
    return [([vocab.tokens[i] for i in x.numpy()], vocab.tokens[int(y)]) for x, y in ds]


@pytest.fixture
def two_files(tmp_path):
    (tmp_path / "a.txt").write_text("A b, c\nd e f g\n", encoding="utf-8")
    (tmp_path / "b.txt").write_text("z y x w v u\n", encoding="utf-8")
    words = "a b c d e f g z y x w v u".split()
    vocab = corpus.Vocabulary.from_counts(collections.Counter(words), 0, {"mode": "words"})
    return corpus.find_files(str(tmp_path / "*.txt")), vocab


def test_every_pipeline_runs_as_written_without_autotuning_or_rewrites(two_files):
    """Autotuning stalled at epoch ends; tf.data's default rewrites were redone at every iterator."""
    from lm_app import evaluate

    files, vocab = two_files
    windows = data.CorpusWindows(files, vocab, 2)
    pipelines = {"the count": windows.numbered, "training batches": data.batched(windows.dataset(), 2, True, 1),
                 "stream chunks": data.stream_chunks(np.zeros((2, 9), np.int32), 3),
                 "evaluate's rows": evaluate.stream_rows(files, vocab, 2)}
    for name, ds in pipelines.items():
        options = ds.options()
        assert options.autotune.enabled is False and options.deterministic is True, name
        assert options.experimental_optimization.apply_default_optimizations is False, name


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


def test_three_parts_are_disjoint_eight_one_one_and_cover_the_data(tmp_path):
    """Train, validation and test windows share no word; only windows at a part's first edge are dropped."""
    words = [chr(97 + i // 26 // 26) + chr(97 + i // 26 % 26) + chr(97 + i % 26) for i in range(800)]
    position = {w: i for i, w in enumerate(words)}
    (tmp_path / "a.txt").write_text(" ".join(words), encoding="utf-8")
    vocab = corpus.Vocabulary.from_counts(collections.Counter(words), 0, {"mode": "words"})
    files = [str(tmp_path / "a.txt")]
    window, block = 3, 20

    def positions(split):
        # each window is identified by the index of its first word (read in one batch: an element
        # at a time, eager iteration cost more than the rest of the test)
        ds = data.window_dataset(files, vocab, window, split, 0.1, 0.1, block).batch(1 << 16)
        return [position[vocab.tokens[i]] for x, _ in ds for i in x[:, 0].numpy()]

    parts = {split: positions(split) for split in ("train", "valid", "test")}
    everything = positions("all")
    assert all((p // block) % 10 < 8 for p in parts["train"])
    assert all((p // block) % 10 == 8 for p in parts["valid"])
    assert all((p // block) % 10 == 9 for p in parts["test"])
    for a, b in [("train", "valid"), ("train", "test"), ("valid", "test")]:
        words_a = {p + k for p in parts[a] for k in range(window + 1)}
        words_b = {p + k for p in parts[b] for k in range(window + 1)}
        assert not words_a & words_b, (a, b)
    # Every window is in exactly one part, except the first `window` of a block after a change of part.
    dropped = {p for p in everything if p % block < window and (p // block) % 10 in (0, 8, 9)}
    kept = sorted(p for split in parts for p in parts[split])
    assert kept == sorted(set(everything) - dropped)
    shares = {split: len(parts[split]) / len(kept) for split in parts}
    assert shares["train"] > 0.75 and 0.07 < shares["valid"] < 0.13 and 0.07 < shares["test"] < 0.13
    # The one-pass count the window objective sizes its epochs with agrees with each part, across files too.
    (tmp_path / "b.txt").write_text(" ".join(words[:95]), encoding="utf-8")
    files.append(str(tmp_path / "b.txt"))
    counts = data.CorpusWindows(files, vocab, window, 0.1, 0.1, block).counts()
    assert counts == {split: len(positions(split)) for split in ("train", "valid", "test", "all")}
    assert counts["train"] > len(parts["train"])


def test_a_small_corpus_is_read_once_and_a_large_one_on_every_pass(two_files, monkeypatch):
    """Kept in memory, the parts come from the first pass even after the files change; streamed, from the files."""
    files, vocab = two_files
    kept = data.CorpusWindows(files, vocab, 2, keep=True)
    monkeypatch.setattr(data, "CACHE_BYTES", 0)
    streamed = data.CorpusWindows(files, vocab, 2, keep=True)
    assert kept.counts() == streamed.counts() == {"train": 7, "valid": 0, "test": 0, "all": 5 + 4}
    first = {split: decode(kept.dataset(split), vocab) for split in ("all", "train")}
    assert decode(streamed.dataset("all"), vocab) == first["all"]
    for name in files:
        with open(name, "a", encoding="utf-8") as f:
            f.write("a b c d\n")
    assert {split: decode(kept.dataset(split), vocab) for split in ("all", "train")} == first
    assert kept.counts()["all"] == 9
    assert streamed.counts()["all"] == len(decode(streamed.dataset("all"), vocab)) == 9 + 2 * 4


def test_a_test_share_of_zero_leaves_train_and_validation_as_before(tmp_path):
    words = [chr(97 + i // 26) + chr(97 + i % 26) for i in range(400)]
    (tmp_path / "a.txt").write_text(" ".join(words), encoding="utf-8")
    vocab = corpus.Vocabulary.from_counts(collections.Counter(words), 0, {"mode": "words"})
    files = [str(tmp_path / "a.txt")]
    valid = [words.index(vocab.tokens[x[0]]) for x, _ in
             data.window_dataset(files, vocab, 3, "valid", 0.2, 0.0, 20)]
    assert valid and all((p // 20) % 5 == 4 for p in valid)
    assert not list(data.window_dataset(files, vocab, 3, "test", 0.2, 0.0, 20))


def test_the_stream_splits_into_three_disjoint_parts_that_cover_it():
    ids = np.arange(1000)
    train_ids, valid_ids, test_ids = data.split_stream(ids, 0.1, 0.1, cycles=10)
    assert (len(train_ids), len(valid_ids), len(test_ids)) == (800, 100, 100)
    assert sorted(np.concatenate([train_ids, valid_ids, test_ids])) == list(ids)
    assert np.all(np.diff(valid_ids[:10]) == 1) and np.all(np.diff(test_ids[:10]) == 1)
    assert valid_ids[0] == 80 and test_ids[0] == 90  # blocks of 10: 8 train, 1 valid, 1 test


@pytest.mark.parametrize("valid, test", [(0.3, 0.3), (0.5, 0.1), (0.0, 0.6)])
def test_held_out_shares_above_half_are_refused(valid, test):
    with pytest.raises(UsageError, match="at most 0.5"):
        data.split_cycle(valid, test)


def test_shuffling_is_deterministic_with_a_seed(two_files):
    files, vocab = two_files
    ds = data.window_dataset(files, vocab, 2, "all")

    def order(seed):
        return [int(y) for _, y in data.batched(ds, 1, shuffle=True, seed=seed).unbatch()]

    assert order(7) == order(7)
    assert sorted(order(7)) == sorted(order(8))


@pytest.mark.parametrize("mode", text.MODES)
def test_lines_longer_than_the_bound_are_cut_between_words(tmp_path, monkeypatch, mode):
    """Cut lines give the same tokens (and, pretokenized, one <eos> per real line) in build-dict and train."""
    from lm_app import corpus as corpus_module

    monkeypatch.setattr(corpus_module, "MAX_LINE", 50)
    monkeypatch.setattr(corpus_module, "_READ_CHUNK", 64)
    words = [f"w{chr(97 + i % 7)}{chr(97 + i % 5) * (1 + i % 9)}" for i in range(3000)]
    body = " ".join(words[:1500]) + "\n" + "  ".join(words[1500:]) + " \nlast line\n" + "x" * 40
    (tmp_path / "a.txt").write_text(body, encoding="utf-8")
    expected = text.tokenize(body, mode)
    counts = corpus.count_tokens([str(tmp_path / "a.txt")], mode, workers=1)
    assert counts == collections.Counter(expected)
    vocab = corpus.Vocabulary.from_counts(counts, 0, {"mode": mode})
    ids = data.token_ids([str(tmp_path / "a.txt")], vocab)
    assert [vocab.tokens[i] for i in ids] == [t if t in vocab.index else "<unk>" for t in expected]


@pytest.mark.parametrize("mode", text.MODES)
def test_training_reads_the_corpus_with_the_vocabularys_encoding(tmp_path, mode):
    body = "Le café crème est très bon\nUn café noir et une crème brûlée\n" * 4
    (tmp_path / "a.txt").write_bytes(body.encode("latin-1"))
    vocab = corpus.build_vocabulary(str(tmp_path / "a.txt"), min_count=0, mode=mode, encoding="latin-1")
    assert ("café" if mode == "pretokenized" else "caf") in vocab.tokens
    ids = data.token_ids([str(tmp_path / "a.txt")], vocab)
    assert [vocab.tokens[i] for i in ids] == text.tokenize(body, mode)
    windows = list(data.window_dataset([str(tmp_path / "a.txt")], vocab, 3, "all"))
    assert windows and all(text.UNK_ID not in x.numpy() and int(y) != text.UNK_ID for x, y in windows)


CYCLE = ("the cat sat on the mat and the dog ran to the park while the bird sang "
         "over the house near the river").split()


def test_the_test_figures_come_from_the_test_part_only(tmp_path):
    """Every tenth block of the stream (the test part) is the cycle backwards: only the test figures fall."""
    import json

    from lm_app.config import TrainConfig
    from lm_app.train import train

    blocks = [CYCLE[::-1] if b % 10 == 9 else CYCLE for b in range(100)]  # the split's 100 blocks
    (tmp_path / "c.txt").write_text("\n".join(" ".join(b) for b in blocks) + "\n", encoding="utf-8")
    vocab = corpus.build_vocabulary(str(tmp_path / "c.txt"), min_count=0)
    vocab.save(tmp_path / "vocab.txt")
    cfg = TrainConfig(corpus=str(tmp_path / "c.txt"), vocab=str(tmp_path / "vocab.txt"),
                      model_dir=str(tmp_path / "lm"), objective="stream", arch="gru", bptt=8,
                      batch_size=4, embedding=16, hidden=32, epochs=6, learning_rate=0.02, seed=3)
    metrics = train(cfg, verbose=0, log=lambda *a: None)
    assert json.loads((tmp_path / "lm" / "metrics.json").read_text()) == metrics
    assert set(metrics) == {"epochs", "valid", "test"}
    assert metrics["valid"]["accuracy"] > 0.6, metrics
    assert metrics["test"]["accuracy"] < metrics["valid"]["accuracy"] - 0.4, metrics
    assert metrics["test"]["perplexity"] > 2 * metrics["valid"]["perplexity"], metrics


def test_a_test_corpus_is_scored_apart_and_every_figure_is_labelled(tmp_path):
    import json

    from tests.conftest import run_cli_in_process, tiny_corpus, train_cli

    glob, vocab = tiny_corpus(tmp_path, repeats=20)
    (tmp_path / "test.txt").write_text((" ".join(CYCLE[::-1]) + "\n") * 10, encoding="utf-8")
    proc = train_cli(glob, vocab, tmp_path / "lm", "--test-corpus", tmp_path / "test.txt",
                     "--embedding", 16, "--hidden", 48, "--batch-size", 32, "--learning-rate", 0.01,
                     "--epochs", 3, "--seed", 7, run=run_cli_in_process)
    metrics = json.loads((tmp_path / "lm" / "metrics.json").read_text())
    assert set(metrics) == {"epochs", "valid", "test"}
    assert set(metrics["test"]) == set(metrics["valid"]) == {"loss", "perplexity", "accuracy", "top5"}
    assert metrics["test"]["accuracy"] < metrics["valid"]["accuracy"] - 0.4, metrics
    lines = proc.stdout.strip().splitlines()[-2:]
    assert lines[0].startswith(f"test accuracy {metrics['test']['accuracy']:.1%}"), lines
    assert lines[1].startswith(f"validation accuracy {metrics['valid']['accuracy']:.1%}"), lines
    assert f"best of {metrics['epochs']} epochs" in lines[1]


def test_train_and_evaluate_read_a_latin1_corpus_as_build_dict_did(tmp_path):
    import json

    from tests.conftest import run_cli, run_cli_in_process, train_cli

    body = "le café crème est très bon\nun café noir et une crème brûlée\n" * 40
    (tmp_path / "c.txt").write_bytes(body.encode("latin-1"))
    vocab = tmp_path / "vocab.txt"
    built = run_cli("build-dict", "--corpus", tmp_path / "c.txt", "--vocab", vocab, "--pretokenized",
                    "--encoding", "latin-1", "--min-count", 0)
    assert built.returncode == 0, built.stderr
    train_cli(tmp_path / "c.txt", vocab, tmp_path / "lm", "--embedding", 8, "--hidden", 8, "--epochs", 1,
              "--batch-size", 16, run=run_cli_in_process)
    report = run_cli_in_process("evaluate", "--model-dir", tmp_path / "lm", "--corpus", tmp_path / "c.txt",
                     "--pretokenized", "--json")
    assert report.returncode == 0, report.stderr
    assert json.loads(report.stdout)["unk_share"] == 0


def test_held_out_shares_that_leave_less_than_half_to_train_are_one_line_errors(tmp_path):
    from tests.conftest import assert_usage_error, run_cli_in_process

    assert_usage_error(run_cli_in_process("train", "--model-dir", tmp_path / "lm", "--valid-fraction", 0.3,
                               "--test-fraction", 0.3), "at most 0.5 together")


def test_rows_and_chunks_are_exactly_the_pytorch_recipe():
    ids = np.arange(23, dtype=np.int32)
    rows = data.batchify(ids, 4)  # 23 // 4 = 5 tokens a row, the last 3 dropped
    np.testing.assert_array_equal(rows, [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9],
                                         [10, 11, 12, 13, 14], [15, 16, 17, 18, 19]])
    chunks = [(x.numpy(), y.numpy()) for x, y in data.stream_chunks(rows, 3)]
    assert len(chunks) == data.count_chunks(rows, 3) == 2
    np.testing.assert_array_equal(chunks[0][0], rows[:, 0:3])
    np.testing.assert_array_equal(chunks[0][1], rows[:, 1:4])
    np.testing.assert_array_equal(chunks[1][0], rows[:, 3:4])  # the last chunk is shorter
    np.testing.assert_array_equal(chunks[1][1], rows[:, 4:5])


def test_stream_split_holds_out_contiguous_blocks():
    ids = np.arange(1000)
    train_ids, valid_ids, test_ids = data.split_stream(ids, 0.2, 0.0, cycles=10)
    assert len(valid_ids) == 200 and len(train_ids) == 800 and len(test_ids) == 0
    assert not set(train_ids) & set(valid_ids)
    assert np.all(np.diff(valid_ids[:20]) == 1)  # blocks of 20 consecutive tokens


def test_token_ids_end_lines_with_eos_in_pretokenized_mode(tmp_path):
    (tmp_path / "a.txt").write_text("x y\nz\n", encoding="utf-8")
    vocab = corpus.build_vocabulary(str(tmp_path / "a.txt"), min_count=0, mode="pretokenized")
    ids = data.token_ids([str(tmp_path / "a.txt")], vocab)
    assert [vocab.tokens[i] for i in ids] == ["x", "y", "<eos>", "z", "<eos>"]


def test_the_stream_split_copies_each_token_once():
    """#17.4: splitting holds the ids and their three parts, no per-token index arrays (int64: twice the ids)."""
    ids = np.arange(1_000_003, dtype=np.int32)
    tracemalloc.start()
    try:
        parts = data.split_stream(ids, 0.1, 0.1)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(np.sort(np.concatenate(parts)), ids)
    assert peak < 1.2 * ids.nbytes, peak / ids.nbytes


def test_training_and_evaluation_do_not_load_tensorflow_text():
    """#17.4: ``import tensorflow_text`` alone adds much resident memory to every process (bench/memory.py)."""
    code = ("import sys; import lm_app.train, lm_app.evaluate, lm_app.data; "
            "print('tensorflow_text' in sys.modules)")
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    out = forks.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert out.split() == ["False"]

"""Bad input: one line on stderr, exit code 2, no traceback, nothing half-written."""
import pytest

from tests.conftest import (assert_one_line_error, assert_usage_error, cycle_corpus, main_in_process,
                            run_cli, tiny_corpus)


def test_help_lists_the_commands():
    proc = run_cli("--help")
    assert proc.returncode == 0
    for command in ("build-dict", "train", "predict"):
        assert command in proc.stdout
    train_help = run_cli("train", "--help").stdout
    assert "--window" in train_help and "default: 5" in train_help


@pytest.mark.parametrize("files, message", [
    ({}, "no files match"),
    ({"empty.txt": b""}, "has no words"),
    ({"latin1.txt": b"caf\xe9\n"}, "latin1.txt is not valid utf-8"),
    ({"rare.txt": b"just a few words\n"}, "all would be <unk>"),
])
def test_build_dict_refuses_bad_corpora(tmp_path, files, message):
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
    vocab = tmp_path / "out" / "vocab.txt"
    assert_usage_error(run_cli("build-dict", "--corpus", tmp_path / "*.txt", "--vocab", vocab), message)
    assert not vocab.exists()


def test_build_dict_refuses_a_directory_as_vocab_path(tmp_path):
    cycle_corpus(tmp_path / "c")
    (tmp_path / "vocab.txt").mkdir()
    proc = run_cli("build-dict", "--corpus", tmp_path / "c" / "*.txt", "--vocab", tmp_path / "vocab.txt")
    assert_usage_error(proc, "cannot write")


def test_train_needs_a_vocabulary(tmp_path):
    cycle_corpus(tmp_path / "c")
    proc = run_cli("train", "--corpus", tmp_path / "c" / "*.txt", "--vocab", tmp_path / "missing.txt",
                   "--model-dir", tmp_path / "lm")
    assert_usage_error(proc, "not found")


def test_train_refuses_a_vocabulary_that_does_not_match_its_settings(tmp_path):
    cycle_corpus(tmp_path / "c")
    glob, vocab = tmp_path / "c" / "*.txt", tmp_path / "vocab.txt"
    assert run_cli("build-dict", "--corpus", glob, "--vocab", vocab).returncode == 0
    vocab.write_text(vocab.read_text().replace("cat", "cow"))
    proc = run_cli("train", "--corpus", glob, "--vocab", vocab, "--model-dir", tmp_path / "lm")
    assert_usage_error(proc, "does not match")
    assert not (tmp_path / "lm" / "saved_model.pb").exists()


def test_train_refuses_a_corpus_shorter_than_a_window(tmp_path):
    cycle_corpus(tmp_path / "c", repeats=4)
    glob, vocab = tmp_path / "c" / "*.txt", tmp_path / "vocab.txt"
    assert run_cli("build-dict", "--corpus", glob, "--vocab", vocab, "--min-count", 0).returncode == 0
    proc = run_cli("train", "--corpus", glob, "--vocab", vocab, "--model-dir", tmp_path / "lm",
                   "--window", 200)
    assert_usage_error(proc, "too small for windows of 200 words")


def test_train_with_no_matching_files(tmp_path):
    # Reported first, whether or not a vocabulary exists (a clean clone has none).
    for vocab in (tmp_path / "missing.txt", tiny_corpus(tmp_path / "v")[1]):
        proc = run_cli("train", "--corpus", tmp_path / "nothing" / "*.txt", "--vocab", vocab,
                       "--model-dir", tmp_path / "lm")
        assert_usage_error(proc, "no files match")


def test_bidirectional_next_word_training_is_refused():
    assert_usage_error(run_cli("train", "--bidirectional"), "cannot predict the next word")


def test_peephole_needs_an_lstm(tmp_path):
    cycle_corpus(tmp_path / "c")
    glob, vocab = tmp_path / "c" / "*.txt", tmp_path / "vocab.txt"
    assert run_cli("build-dict", "--corpus", glob, "--vocab", vocab).returncode == 0
    proc = run_cli("train", "--corpus", glob, "--vocab", vocab, "--model-dir", tmp_path / "lm",
                   "--arch", "gru", "--peephole")
    assert_usage_error(proc, "--peephole needs --arch lstm")


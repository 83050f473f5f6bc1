"""A run's state on disk (lm_app/checkpoint.py): the corpus fingerprint, reading checkpoints back, the settings a resume merges."""
import os

import pytest
import tensorflow as tf

from lm_app.checkpoint import corpus_change, fingerprint, read_checkpoint
from tests.conftest import cycle_corpus


def test_the_fingerprint_sees_a_change_at_either_end_of_a_big_file(tmp_path):
    big = tmp_path / "big.txt"
    big.write_bytes(b"a" * 300_000)
    key = os.path.abspath(big)
    before = fingerprint([str(big)])
    assert corpus_change(before, fingerprint([str(big)])) == ""
    for offset in (0, 299_999):
        with open(big, "r+b") as f:
            f.seek(offset)
            f.write(b"b")
        os.utime(big, ns=(0, before[key]["mtime_ns"]))  # the same size and mtime
        assert corpus_change(before, fingerprint([str(big)])) == f"{key} was modified", offset
        big.write_bytes(b"a" * 300_000)


def test_corpus_change_names_the_first_change_and_counts_the_rest():
    a, b = {"size": 1}, {"size": 2}
    assert corpus_change({"x": a}, {"x": a, "y": a}) == "y is new"
    assert corpus_change({"x": a, "y": a}, {"x": b}) == "y is gone, and 1 more change(s)"
    assert corpus_change({"x": a}, {"x": b}) == "x was modified"


def test_read_checkpoint_says_what_is_wrong_instead_of_raising(tmp_path):
    saved = tf.train.Checkpoint(v=tf.Variable([1.0, 2.0])).save(str(tmp_path / "ckpt"))  # as the manager saves
    target = tf.Variable([0.0, 0.0])
    assert read_checkpoint(tf.train.Checkpoint(v=target), saved) == ""
    assert target.numpy().tolist() == [1.0, 2.0]
    assert read_checkpoint(tf.train.Checkpoint(w=tf.Variable(0.0)), saved) == "its variables are not this model's"
    data = next(tmp_path.glob("ckpt-1.data-*"))
    data.write_bytes(data.read_bytes()[:3])
    assert read_checkpoint(tf.train.Checkpoint(v=tf.Variable([0.0, 0.0])), saved)


@pytest.fixture
def stream_run(tmp_path):
    """The record of a stream run with --bptt 50 and a test corpus of its own, as prepare_run writes it."""
    from lm_app.config import TrainConfig
    from lm_app.corpus import build_vocabulary
    from lm_app.checkpoint import prepare_run

    glob = str(cycle_corpus(tmp_path / "c", repeats=5) / "*.txt")
    test = cycle_corpus(tmp_path / "t", repeats=2)
    build_vocabulary(glob, min_count=0).save(tmp_path / "vocab.txt")
    cfg = TrainConfig(corpus=glob, vocab=str(tmp_path / "vocab.txt"), model_dir=str(tmp_path / "lm"),
                      objective="stream", bptt=50, tied=True, embedding=16, hidden=16,
                      test_corpus=str(test / "*.txt"))
    prepare_run(cfg, resume=False, fresh=False, log=print)
    return tmp_path / "lm", test


def test_resume_accepts_typed_flags_that_repeat_the_run(stream_run, capsys):
    """--bptt and --tied act with stream only: typed again on a stream run's resume they are no conflict."""
    from tests.conftest import assert_one_line_error, main_in_process

    model_dir, _ = stream_run
    # The refusal names --hidden, the one change: --bptt and --tied passed as the run's own values.
    code, _, err = main_in_process("train", "--resume", "--model-dir", model_dir, "--bptt", 50, "--tied",
                                   "--hidden", 32, capsys=capsys)
    assert_one_line_error(code, err, "train", "--hidden 32 differs from the run")


def test_resume_checks_the_merged_settings(stream_run, capsys):
    from tests.conftest import assert_one_line_error, main_in_process

    model_dir, _ = stream_run
    code, _, err = main_in_process("train", "--resume", "--model-dir", model_dir, "--epochs", 0, capsys=capsys)
    assert_one_line_error(code, err, "train", "--epochs must be a positive integer, got 0")


def test_a_changed_test_corpus_is_refused_on_resume(stream_run, capsys):
    from tests.conftest import assert_one_line_error, main_in_process

    model_dir, test = stream_run
    with open(test / "part0.txt", "a", encoding="utf-8") as f:
        f.write("the cat\n")
    code, _, err = main_in_process("train", "--resume", "--model-dir", model_dir, capsys=capsys)
    assert_one_line_error(code, err, "train", "the corpus changed since the run")

"""A run's state on disk (lm_app/checkpoint.py): the corpus fingerprint and reading checkpoints back."""
import os

import tensorflow as tf

from lm_app.checkpoint import corpus_change, fingerprint, read_checkpoint


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

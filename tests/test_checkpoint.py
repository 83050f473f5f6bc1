"""A run's state on disk (lm_app/checkpoint.py): the corpus fingerprint, reading checkpoints back, the settings a resume merges."""
import json
import os

import pytest
import tensorflow as tf

from lm_app.checkpoint import corpus_change, fingerprint, read_checkpoint, restore
from lm_app.distribute import newest_common
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


def three_saves(folder):
    """A manager holding saves at step 5 and 10 of epoch 1, then step 10 once epoch 1 closed, and the variables."""
    step, progress = tf.Variable(0, dtype=tf.int64), tf.Variable("")
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(step=step, progress=progress), str(folder), 4)
    for epoch, at in ((0, 5), (0, 10), (1, 10)):
        step.assign(at)
        progress.assign(json.dumps({"epoch": epoch}))
        manager.save()
    return manager, step, progress


def test_workers_restore_the_newest_position_that_all_of_them_saved(tmp_path):
    """A worker killed while another saved on: both must restore the same position, whichever lags."""
    manager, step, progress = three_saves(tmp_path)
    offered, lines = [], []

    def agree(positions):  # as newest_common answers when the other worker's newest is step 10 of epoch 1
        offered.append(sorted(positions))
        return 10

    step.assign(99)
    restore(manager, lines.append, agree)
    assert offered == [[5, 10, 2**40 + 10]]  # an epoch's close is a later position than its last step
    assert int(step.numpy()) == 10 and json.loads(progress.numpy())["epoch"] == 0
    assert lines == [f"resuming from {manager.checkpoints[1]}: where every worker saved its state"]
    step.assign(99)
    restore(manager, lines.append, lambda positions: None)  # one worker never saved: all start afresh
    assert int(step.numpy()) == 99 and lines[1] == "starting afresh: a worker saved no state"
    restore(manager, lines.append, lambda positions: max(positions))  # the newest: restored as alone
    assert int(step.numpy()) == 10 and json.loads(progress.numpy())["epoch"] == 1 and len(lines) == 2


def test_one_worker_shares_its_newest_position_with_itself():
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    assert newest_common(strategy, [5, 2**40 + 10, 10], 4) == 2**40 + 10
    assert newest_common(strategy, [], 4) is None

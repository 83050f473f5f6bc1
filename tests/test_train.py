"""The training loop (lm_app/train.py): its output, its epoch end as one commit, its helpers.

Resuming after kill -9 and Ctrl-C in a real process are test_resume.py's.
"""
import hashlib
import json
import os
import re
import signal
import sys

import numpy as np
import pytest

from lm_app.atomic import FolderLock
from lm_app.train import describe_metrics
from tests.conftest import tiny_corpus
from tests.test_resume import assert_same_weights


@pytest.fixture(scope="module")
def trained(one_epoch):
    """One epoch of a tiny model, trained by the command: its output and its folder."""
    return one_epoch


def figures(accuracy):
    return {"loss": 1.0, "accuracy": accuracy, "top5": 0.9, "perplexity": 2.7}


def test_the_final_figures_come_test_first_each_named_with_its_part():
    lines = describe_metrics({"epochs": 3, "valid": figures(0.5), "test": figures(0.25)}).splitlines()
    assert lines == [
        "test accuracy 25.0%, top-5 accuracy 90.0%, perplexity 2.7 "
        "(held out: neither trained on nor used to pick the weights)",
        "validation accuracy 50.0%, top-5 accuracy 90.0%, perplexity 2.7 (picked the weights: the best of 3 epochs)",
    ]


def test_a_run_without_a_test_part_reports_validation_only():
    assert describe_metrics({"epochs": 1, "valid": figures(0.5)}).endswith("(picked the weights: 1 epoch)")


@pytest.mark.slow
def test_the_summary_of_a_one_epoch_run_is_grammatical(trained):
    assert "(picked the weights: 1 epoch)" in trained["stdout"] and "epochs)" not in trained["stdout"]


@pytest.mark.slow
def test_the_epoch_line_rounds_the_speed(trained):
    out = trained["stdout"]
    assert "seconds:" not in out and "tokens_per_second" not in out, out
    assert re.search(r"^training: \d+\.\d s, [\d,]+ tokens/s$", out, re.M), out
    assert re.search(r"^\d+/\d+ - .* - loss: \d\.\d{4} - .* - val_loss: \d\.\d{4}", out, re.M), out


@pytest.mark.slow
def test_a_finished_model_folder_leaves_no_lock_file(trained, tmp_path):
    assert not list(trained["dir"].parent.glob("*.lock")) and not list(trained["dir"].glob("*lock"))
    lock = tmp_path / ".lm.lock"
    for _ in range(2):  # released and removed, then taken again
        with FolderLock(tmp_path / "lm"):
            assert lock.read_text() == f"process {os.getpid()}\n"
        assert not lock.exists()


class InterruptEpochEnd:
    """Raise ``raise_()`` (a Ctrl-C) when the first epoch end reaches ``at``: (line or "return", nth time);
    without ``at``, record each line it runs with what a run would keep if it stopped there.

    A trace function is called on every Python call, which made TensorFlow's tracing and the
    export several times slower; so it is set only for the first epoch end: armed by the
    speed line that ``train(verbose=2)`` prints (stdout comes here) just before it, and
    removed when that epoch end returns or is interrupted.
    """

    def __init__(self, at=None, model_dir=None, raise_=KeyboardInterrupt):
        self.at, self.model_dir, self.calls, self.raise_ = at, model_dir, 0, raise_
        self.lines, self.kept, self.seen = [], [], []
        self.armed = False

    def __enter__(self):
        self.stdout, sys.stdout = sys.stdout, self
        return self

    def __exit__(self, *exc):
        sys.settrace(None)
        sys.stdout = self.stdout

    def write(self, text):
        if text.startswith("training: ") and not self.armed:
            self.armed = True
            sys.settrace(self.on_call)
        return len(text)

    def flush(self):
        pass

    def isatty(self):
        return False

    def on_call(self, frame, event, arg):
        if frame.f_code.co_name == "end_epoch" and frame.f_code.co_filename.endswith("train.py"):
            self.calls += 1
            return self.on_line if self.calls == 1 else None
        return None

    def on_line(self, frame, event, arg):
        point = frame.f_lineno if event == "line" else event
        if self.at is None and event in ("line", "return"):
            self.lines.append(point)
            self.kept.append(kept_state(self.model_dir, frame.f_back.f_locals))
        elif event in ("line", "return"):
            self.seen.append(point)
            if (point, self.seen.count(point)) == self.at:
                sys.settrace(None)
                raise self.raise_()
        if event == "return":
            sys.settrace(None)
        return self.on_line


def interrupted_import():
    """What a SIGINT inside a C extension's first import raises (matplotlib's backend did, at an epoch end)."""
    error = ImportError("initialization failed")
    error.__cause__ = KeyboardInterrupt()
    return error


def kept_state(model_dir, train_locals):
    """All that outlives an interrupted ``train()``: the folder's files and the checkpointed variables.

    The rest (the half-built progress record ``after``) dies with the call, so
    two instants with the same kept state resume alike.
    """
    digest = hashlib.sha256()
    for path in sorted(p for p in model_dir.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(model_dir)).encode() + hashlib.sha256(path.read_bytes()).digest())
    trainer = train_locals["trainer"]
    for variable in (*trainer.model.variables, *trainer.optimizer.variables, trainer.train_metrics.sums,
                     trainer.step, *trainer.objective.state_variables(), train_locals["progress_var"]):
        digest.update(np.asarray(variable.numpy()).tobytes())
    return digest.hexdigest()


def comparable(model_dir):
    history = json.loads((model_dir / "history.json").read_text())
    return {k: v for k, v in history.items() if k not in ("seconds", "tokens_per_second")}


@pytest.mark.slow
def test_ctrl_c_at_any_instant_of_the_epoch_end_resumes_to_the_uninterrupted_run(tmp_path):
    """#12.11: the epoch end is one commit; an interrupt at each instant it changes what a run keeps, then a resume."""
    from lm_app.config import TrainConfig
    from lm_app.train import train

    glob, vocab = tiny_corpus(tmp_path, repeats=8)
    options = dict(verbose=2, log=lambda *a: None)  # verbose: its speed line arms InterruptEpochEnd

    def config(name):
        return TrainConfig(corpus=glob, vocab=str(vocab), model_dir=str(tmp_path / name), embedding=4,
                           hidden=8, batch_size=16, epochs=2, dropout=0.2, seed=3, learning_rate=0.05,
                           valid_fraction=0.2, test_fraction=0)  # the old split: the smallest corpus that holds it

    with InterruptEpochEnd(model_dir=tmp_path / "straight") as trace:
        expected = train(config("straight"), **options)
    # One instant per kept state: the first line run after each change of the folder or the
    # variables (a line run twice, as a `with`, is told apart by its count).
    lines = trace.lines
    points = [(lines[i], lines[:i + 1].count(lines[i]))
              for i, kept in enumerate(trace.kept) if i == 0 or kept != trace.kept[i - 1]]
    assert len(points) >= 5 and "return" in lines
    for i, point in enumerate(points):
        name = "at-{}-{}".format(*point)
        how = KeyboardInterrupt if i % 2 == 0 else interrupted_import  # both are a Ctrl-C: half the instants each
        with pytest.raises(KeyboardInterrupt), InterruptEpochEnd(at=point, raise_=how):
            train(config(name), **options)
        got = train(config(name), resume=True, **options)
        assert got.keys() == expected.keys() and got["epochs"] == expected["epochs"], point
        for part in ("valid", "test"):
            assert got.get(part) == pytest.approx(expected.get(part)), (point, part)
        history, expected_history = comparable(tmp_path / name), comparable(tmp_path / "straight")
        assert history.keys() == expected_history.keys()
        for key, values in expected_history.items():  # an epoch recorded twice fails on the length
            np.testing.assert_allclose(history[key], values, rtol=1e-6, err_msg=f"{point}: {key}")
        assert_same_weights(tmp_path / name, tmp_path / "straight")


def test_a_ctrl_c_inside_the_checkpoint_write_lets_the_commit_finish(tmp_path, monkeypatch):
    """A real SIGINT inside the epoch end's checkpoint write: the write finishes, then the run stops as on Ctrl-C.

    Raised inside the writer, the interrupt broke TensorFlow's device-scope stack and
    surfaced as a RuntimeError: a traceback, exit 1, and no state saved.
    """
    import tensorflow as tf

    from lm_app.config import TrainConfig
    from lm_app.train import train

    glob, vocab = tiny_corpus(tmp_path, repeats=8)
    write, written = tf.train.CheckpointManager.save, []

    def save_with_a_ctrl_c(manager, *args, **kwargs):
        if not written:
            os.kill(os.getpid(), signal.SIGINT)  # handled at the next bytecode unless it is held
        written.append(write(manager, *args, **kwargs))
        return written[-1]

    monkeypatch.setattr(tf.train.CheckpointManager, "save", save_with_a_ctrl_c)
    cfg = TrainConfig(corpus=glob, vocab=str(vocab), model_dir=str(tmp_path / "lm"), embedding=4, hidden=8,
                      batch_size=16, epochs=2, seed=3, valid_fraction=0.2, test_fraction=0)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, log=lambda *a: None)
    # The commit, then the interrupt's own save of the progress as it was before it.
    assert len(written) == 2 and all(tf.io.gfile.exists(f"{path}.index") for path in written)
    assert (tmp_path / "lm" / "saved_model.pb").exists()  # the interrupt exported the best weights

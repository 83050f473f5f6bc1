"""Nothing lost: kill -9 and --resume reach the same weights; Ctrl-C saves and exports; one writer per folder."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from lm_app.atomic import FolderLock
from tests import forks
from tests.conftest import ROOT, assert_usage_error, cycle_corpus, run_cli, run_cli_in_process

pytestmark = pytest.mark.slow

FLAGS = ["--embedding", 8, "--hidden", 16, "--batch-size", 16, "--patience", 5, "--dropout", 0.2,
         "--seed", 11, "--save-every", 3, "--learning-rate", 0.01]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    work = tmp_path_factory.mktemp("resume")
    glob = str(cycle_corpus(work / "corpus", repeats=25) / "*.txt")
    vocab = work / "vocab.txt"
    assert run_cli("build-dict", "--corpus", glob, "--vocab", vocab).returncode == 0
    return work, ["--corpus", glob, "--vocab", vocab, "--epochs", 2, *FLAGS]


def start_training(model_dir, args, *extra):
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    return forks.Popen([sys.executable, "-m", "lm_app", "train", "--model-dir", str(model_dir),
                             *map(str, [*args, *extra])], cwd=ROOT, env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=forks.default_sigint)


def wait_for(path, proc, timeout=240):
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def kill_after_first_save(model_dir, args):
    """A run killed by ``kill -9`` after its first save (step 3 of epoch 1): unfinished, resumable."""
    proc = start_training(model_dir, args)
    wait_for(model_dir / "checkpoints" / "checkpoint", proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (model_dir / "saved_model.pb").exists()
    return model_dir


@pytest.fixture(scope="module")
def straight(corpus):
    """A run that was never interrupted; tests copy it, never change it."""
    work, args = corpus
    done = run_cli_in_process("train", "--model-dir", work / "straight", *args)
    assert done.returncode == 0, done.stderr
    return work / "straight"


@pytest.fixture(scope="module")
def unfinished(corpus):
    """A killed run; tests that resume it work on a copy."""
    work, args = corpus
    return kill_after_first_save(work / "unfinished", args)


def copy_of(model_dir, tmp_path):
    return Path(shutil.copytree(model_dir, tmp_path / model_dir.name))


def final_state(model_dir):
    """Every model variable of the last checkpoint, by name."""
    reader = tf.train.load_checkpoint(str(model_dir / "checkpoints"))
    names = [n for n in reader.get_variable_to_shape_map() if n.startswith("model/")]
    assert names
    return {n: reader.get_tensor(n) for n in names}


def assert_same_weights(model_dir, reference):
    expected, got = final_state(reference), final_state(model_dir)
    assert expected.keys() == got.keys()
    for name in expected:
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-5, atol=1e-6, err_msg=name)


def test_kill_9_then_resume_in_a_moved_folder_gives_the_uninterrupted_run(corpus, straight, tmp_path):
    """#12.9/#12.16: the folder named is trained, with the run's own settings (not the flags' defaults)."""
    work, args = corpus
    killed = kill_after_first_save(work / "killed", args)
    moved = tmp_path / "moved"
    killed.rename(moved)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    resumed = run_cli_in_process("train", "--resume", "--model-dir", moved, cwd=elsewhere)  # no other flag
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming at epoch 1, step" in resumed.stdout
    assert "Epoch 2/2" in resumed.stdout and "Epoch 3/" not in resumed.stdout
    assert (moved / "saved_model.pb").exists()
    assert not killed.exists()
    assert json.loads((moved / "config.json").read_text())["epochs"] == 2
    assert_same_weights(moved, straight)


def test_checkpoint_variables_are_stored_by_name(straight):
    names = final_state(straight)
    assert any("embedding" in name for name in names), sorted(names)


def test_resume_with_nothing_to_resume_is_an_error(corpus, tmp_path):
    work, args = corpus
    assert_usage_error(run_cli_in_process("train", "--model-dir", tmp_path / "empty", "--resume", *args),
                       "nothing to resume")
    assert not (tmp_path / "empty" / "checkpoints").exists()


def test_resume_and_fresh_together_are_refused(corpus, unfinished):
    work, args = corpus
    assert_usage_error(run_cli_in_process("train", "--model-dir", unfinished, "--resume", "--fresh", *args),
                       "--fresh")
    assert_usage_error(run_cli_in_process("train", "--model-dir", unfinished, "--force", "--fresh", *args),
                       "--force only acts with --resume")


def test_a_typed_flag_that_changes_the_run_is_refused(corpus, unfinished):
    work, args = corpus
    before = tf.train.latest_checkpoint(str(unfinished / "checkpoints"))
    assert_usage_error(run_cli_in_process("train", "--model-dir", unfinished, "--resume", "--hidden", 32),
                       "--hidden 32 differs from the run")
    assert tf.train.latest_checkpoint(str(unfinished / "checkpoints")) == before


def test_resume_may_extend_epochs_and_says_so(straight, tmp_path):
    model_dir = copy_of(straight, tmp_path)
    resumed = run_cli_in_process("train", "--resume", "--model-dir", model_dir, "--epochs", 3)
    assert resumed.returncode == 0, resumed.stderr
    assert "trains to 3" in resumed.stdout
    assert len(json.loads((model_dir / "history.json").read_text())["loss"]) == 3
    assert json.loads((model_dir / "config.json").read_text())["epochs"] == 3


def test_a_truncated_checkpoint_falls_back_to_the_previous_one(straight, tmp_path):
    model_dir = copy_of(straight, tmp_path)
    state = model_dir / "checkpoints"
    newest, previous = sorted(state.glob("ckpt-*.index"), key=lambda p: int(p.stem.split("-")[1]))[::-1]
    data = newest.with_suffix(".data-00000-of-00001")
    data.write_bytes(data.read_bytes()[:len(data.read_bytes()) // 2])
    resumed = run_cli_in_process("train", "--resume", "--model-dir", model_dir)
    assert resumed.returncode == 0, resumed.stderr
    said = [line for line in resumed.stdout.splitlines() if "cannot be read" in line]
    assert len(said) == 1, resumed.stdout
    assert said[0].startswith(f"the checkpoint {state / newest.stem} cannot be read")
    assert said[0].endswith(f"resuming from {state / previous.stem}")
    assert_same_weights(model_dir, straight)  # the steps after the previous save were trained again

    for index in state.glob("ckpt-*.index"):
        index.write_bytes(b"")
    assert_usage_error(run_cli_in_process("train", "--resume", "--model-dir", model_dir), "no checkpoint in")


def test_a_foreign_checkpoint_is_a_one_line_error(straight, tmp_path):
    model_dir = copy_of(straight, tmp_path)
    run = model_dir / "checkpoints" / "run.json"
    run.write_text(json.dumps(dict(json.loads(run.read_text()), arch="gru")))  # another model's state
    assert_usage_error(run_cli_in_process("train", "--resume", "--model-dir", model_dir), "no checkpoint in")


def test_a_changed_corpus_is_refused_unless_forced(corpus, unfinished, tmp_path):
    work, args = corpus
    model_dir = copy_of(unfinished, tmp_path)
    part = Path(args[1]).parent / "part0.txt"
    stat = part.stat()
    os.utime(part, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    try:
        assert_usage_error(run_cli_in_process("train", "--resume", "--model-dir", model_dir),
                           f"the corpus changed since the run in {model_dir} started ({part} was modified)")
        forced = run_cli_in_process("train", "--resume", "--force", "--model-dir", model_dir)
        assert forced.returncode == 0, forced.stderr
        assert "--force: resuming on a corpus that changed" in forced.stdout
        again = run_cli_in_process("train", "--resume", "--model-dir", model_dir)  # the choice is recorded
        assert again.returncode == 0, again.stderr
    finally:
        os.utime(part, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_ctrl_c_saves_state_and_exports_the_best_model(corpus):
    work, args = corpus
    model_dir = work / "interrupted"
    proc = start_training(model_dir, args, "--epochs", 50, "--patience", 50)  # the last flag wins
    wait_for(model_dir / "history.json", proc)  # one epoch done, so a best model exists
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert "--resume" in out
    assert (model_dir / "saved_model.pb").exists()
    assert tf.train.latest_checkpoint(str(model_dir / "checkpoints"))


def test_a_second_run_on_the_same_folder_is_refused(corpus, tmp_path):
    work, args = corpus
    with FolderLock(tmp_path / "busy"):
        proc = run_cli("train", "--model-dir", tmp_path / "busy", *args)
    assert_usage_error(proc, "is in use by process")


def test_an_unfinished_run_is_kept_until_resume_or_fresh(corpus, unfinished):
    work, args = corpus
    before = tf.train.latest_checkpoint(str(unfinished / "checkpoints"))
    assert before
    assert_usage_error(run_cli_in_process("train", "--model-dir", unfinished, *args), "add --resume")
    assert tf.train.latest_checkpoint(str(unfinished / "checkpoints")) == before


def test_resume_with_another_vocabulary_is_refused(corpus, unfinished, tmp_path):
    work, args = corpus
    vocab = args[args.index("--vocab") + 1]
    original = vocab.read_text()
    try:
        glob = str(cycle_corpus(tmp_path / "other", repeats=5) / "*.txt")
        assert run_cli("build-dict", "--corpus", glob, "--vocab", vocab, "--min-count", 0).returncode == 0
        assert_usage_error(run_cli_in_process("train", "--model-dir", unfinished, "--resume", *args),
                           "trained with another vocabulary")
    finally:
        assert run_cli("build-dict", "--corpus", args[1], "--vocab", vocab).returncode == 0
        assert vocab.read_text() == original

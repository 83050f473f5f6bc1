"""Nothing lost: kill -9 and --resume reach the same weights; Ctrl-C saves and exports; one writer per folder."""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from lm_app.atomic import FolderLock
from tests.conftest import ROOT, assert_usage_error, cycle_corpus, run_cli

pytestmark = pytest.mark.slow

FLAGS = ["--embedding", 8, "--hidden", 16, "--batch-size", 8, "--patience", 5, "--dropout", 0.2,
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
    return subprocess.Popen([sys.executable, "-m", "lm_app", "train", "--model-dir", str(model_dir),
                             *map(str, [*args, *extra])], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            # a background job may inherit SIGINT ignored; a user's terminal never does
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def wait_for(path, proc, timeout=240):
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def final_state(model_dir):
    """Every model variable of the last checkpoint, by name."""
    reader = tf.train.load_checkpoint(str(model_dir / "checkpoints"))
    names = [n for n in reader.get_variable_to_shape_map() if n.startswith("model/")]
    assert names
    return {n: reader.get_tensor(n) for n in names}


def test_kill_9_mid_epoch_then_resume_gives_the_uninterrupted_weights(corpus):
    work, args = corpus
    straight = run_cli("train", "--model-dir", work / "straight", *args)
    assert straight.returncode == 0, straight.stderr

    killed_dir = work / "killed"
    proc = start_training(killed_dir, args)
    wait_for(killed_dir / "checkpoints" / "checkpoint", proc)  # the first save, at step 3 of epoch 1
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (killed_dir / "saved_model.pb").exists()

    resumed = run_cli("train", "--model-dir", killed_dir, "--resume", *args)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming at epoch 1, step" in resumed.stdout
    assert (killed_dir / "saved_model.pb").exists()

    expected, got = final_state(work / "straight"), final_state(killed_dir)
    assert expected.keys() == got.keys()
    for name in expected:
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-5, atol=1e-6, err_msg=name)


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


def test_an_unfinished_run_is_kept_until_resume_or_fresh(corpus):
    work, args = corpus
    model_dir = work / "interrupted"  # left unfinished by the Ctrl-C test above
    if not (model_dir / "checkpoints" / "run.json").exists():
        pytest.skip("needs the Ctrl-C test's folder")
    before = tf.train.latest_checkpoint(str(model_dir / "checkpoints"))
    assert_usage_error(run_cli("train", "--model-dir", model_dir, *args), "add --resume")
    assert tf.train.latest_checkpoint(str(model_dir / "checkpoints")) == before


def test_resume_with_another_vocabulary_is_refused(corpus, tmp_path):
    work, args = corpus
    model_dir = work / "interrupted"
    if not (model_dir / "checkpoints" / "run.json").exists():
        pytest.skip("needs the Ctrl-C test's folder")
    vocab = args[args.index("--vocab") + 1]
    original = vocab.read_text()
    try:
        glob = str(cycle_corpus(tmp_path / "other", repeats=5) / "*.txt")
        assert run_cli("build-dict", "--corpus", glob, "--vocab", vocab, "--min-count", 0).returncode == 0
        assert_usage_error(run_cli("train", "--model-dir", model_dir, "--resume", *args),
                           "trained with another vocabulary")
    finally:
        assert run_cli("build-dict", "--corpus", args[1], "--vocab", vocab).returncode == 0
        assert vocab.read_text() == original

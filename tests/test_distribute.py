"""Training across processes with tf.distribute: two workers on localhost end with the same weights."""
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from lm_app.distribute import Pace, worker_folder, worker_index
from tests.conftest import ROOT, assert_usage_error, run_cli_in_process, tiny_corpus, train_cli

FLAGS = ["--embedding", 8, "--hidden", 16, "--batch-size", 16, "--epochs", 2, "--seed", 5,
         "--save-every", 10, "--dropout", 0.1]


def free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def model_variables(folder):
    reader = tf.train.load_checkpoint(str(folder / "checkpoints"))
    return {n: reader.get_tensor(n) for n in reader.get_variable_to_shape_map() if n.startswith("model/")}


@pytest.mark.slow
def test_two_workers_train_in_step_and_the_chief_exports(tmp_path):
    glob, vocab = tiny_corpus(tmp_path, repeats=20)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    model_dir = tmp_path / "lm"
    workers = []
    for index in range(2):
        env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3",
                   TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}))
        workers.append(subprocess.Popen(
            [sys.executable, "-m", "lm_app", "train", "--strategy", "multi-worker", "--corpus", glob,
             "--vocab", str(vocab), "--model-dir", str(model_dir), *map(str, FLAGS)],
            env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = [w.communicate(timeout=600) for w in workers]
    for worker, (out, err) in zip(workers, outputs):
        assert worker.returncode == 0, err[-3000:]
    assert "exported the model" in outputs[0][0]
    assert "exported" not in outputs[1][0]

    chief, other = model_variables(model_dir), model_variables(tmp_path / "lm.worker-1")
    assert chief.keys() == other.keys() and chief
    for name in chief:
        np.testing.assert_allclose(chief[name], other[name], rtol=1e-6, atol=1e-7, err_msg=name)
    assert not (tmp_path / "lm.worker-1" / "saved_model.pb").exists()
    predicted = run_cli_in_process("predict", "--model-dir", model_dir, "--json", "the dog ran to the")
    assert predicted.returncode == 0, predicted.stderr
    assert json.loads(predicted.stdout)["prediction"]


@pytest.mark.slow
def test_mirrored_strategy_trains_on_the_local_devices(tmp_path):
    glob, vocab = tiny_corpus(tmp_path, repeats=10)
    train_cli(glob, vocab, tmp_path / "lm", "--strategy", "mirrored", *FLAGS)
    assert (tmp_path / "lm" / "saved_model.pb").exists()


@pytest.mark.slow
def test_multi_worker_needs_tf_config(tmp_path, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert_usage_error(run_cli_in_process("train", "--strategy", "multi-worker", "--model-dir", tmp_path / "lm"),
                       "needs the TF_CONFIG")


def test_the_pace_of_calls_respects_saves_and_the_epoch_end():
    pace = Pace(seconds=0.5, most=100)
    assert pace.steps(left=50, before_save=50) == 1  # nothing timed yet: the first call also compiles
    pace.took(1, 2.0)
    assert pace.steps(50, 50) == 1
    pace.took(1, 0.02)
    assert pace.steps(left=50, before_save=50) == 25  # half a second of 20 ms steps
    assert pace.steps(left=50, before_save=3) == 3  # a save is due after 3 more
    assert pace.steps(left=2, before_save=50) == 2  # the epoch ends after 2 more
    pace.took(25, 0.0)
    assert pace.steps(10_000, 10_000) == 100


def test_a_fixed_pace_ignores_the_timing_so_workers_agree():
    """Workers training together must run the same steps per call, however fast each one is."""
    fast, slow = Pace(fixed=16), Pace(fixed=16)
    fast.took(16, 0.01)
    slow.took(16, 30.0)
    for left, before_save in [(1000, 1000), (1000, 5), (7, 1000)]:
        assert fast.steps(left, before_save) == slow.steps(left, before_save) == min(16, left, before_save)
    assert Pace(fixed=16).steps(1000, 1000) == 16  # the first call too, before any timing


def test_multi_worker_runs_a_fixed_pace_and_the_others_time_their_steps():
    assert Pace.for_strategy("multi-worker").fixed and not Pace.for_strategy("default").fixed


@pytest.mark.parametrize("config, index", [
    ({}, 0),
    ({"cluster": {"worker": ["a", "b"]}, "task": {"type": "worker", "index": 1}}, 1),
    ({"cluster": {"chief": ["c"], "worker": ["a", "b"]}, "task": {"type": "chief", "index": 0}}, 0),
    ({"cluster": {"chief": ["c"], "worker": ["a", "b"]}, "task": {"type": "worker", "index": 0}}, 1),
])
def test_the_chief_is_worker_0_and_only_it_writes_the_model_folder(config, index, monkeypatch, tmp_path):
    monkeypatch.setenv("TF_CONFIG", json.dumps(config))
    assert worker_index() == index
    folder = worker_folder(tmp_path / "lm", index)
    assert folder == (tmp_path / "lm" if index == 0 else tmp_path / f"lm.worker-{index}")

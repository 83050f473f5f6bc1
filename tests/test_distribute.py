"""Training across processes with tf.distribute: two workers on localhost end with the same weights."""
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from lm_app.distribute import Pace, worker_folder, worker_index
from tests import forks
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


def model_variables(folder, parts=("model/",)):
    reader = tf.train.load_checkpoint(str(folder / "checkpoints"))
    return {n: reader.get_tensor(n) for n in reader.get_variable_to_shape_map() if n.startswith(parts)}


def start_workers(model_dir, *args, log=None):
    """``train --strategy multi-worker`` in two processes, a cluster on localhost ports.

    ``log``: each worker's output is added to ``log.0``, ``log.1`` (else it is piped).
    """
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    workers = []
    for index in range(2):
        env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3",
                   TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}))
        out = dict(stdout=subprocess.PIPE, stderr=subprocess.PIPE) if log is None else \
            dict(stdout=open(f"{log}.{index}", "a"), stderr=subprocess.STDOUT)
        workers.append(forks.Popen(
            [sys.executable, "-m", "lm_app", "train", "--strategy", "multi-worker", "--model-dir", str(model_dir),
             *map(str, args)], env=env, cwd=ROOT, text=True, **out))
        if log is not None:
            out["stdout"].close()  # the worker holds its own copy
    return workers


@pytest.mark.slow
def test_two_workers_train_in_step_and_the_chief_exports(tmp_path):
    glob, vocab = tiny_corpus(tmp_path, repeats=20)
    model_dir = tmp_path / "lm"
    workers = start_workers(model_dir, "--corpus", glob, "--vocab", vocab, *FLAGS)
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
    train_cli(glob, vocab, tmp_path / "lm", "--strategy", "mirrored", *FLAGS, run=run_cli_in_process)
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


# The stream protocol on several replicas: 19 chunks of 5 tokens in 8 rows per epoch, dropout, clipping.
STREAM = ["--objective", "stream", "--arch", "lstm", "--embedding", 8, "--hidden", 16, "--layers", 2,
          "--batch-size", 8, "--bptt", 5, "--epochs", 2, "--seed", 5, "--save-every", 5, "--dropout", 0.2,
          "--optimizer", "sgd", "--learning-rate", 1, "--clip-norm", 0.25]

# One process, first on its one device, then mirrored on two logical CPU devices (set before TensorFlow
# starts), where 7 rows are refused.
ONE_AND_MIRRORED = """
import sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from lm_app.cli import main
def train(strategy, *extra):
    return main(["train", "--strategy", strategy, "--model-dir", f"{sys.argv[1]}/{strategy}", *sys.argv[2:], *extra])
sys.exit(train("default") or train("mirrored", "--batch-size", "7") != 2 or train("mirrored", "--fresh"))
"""


@pytest.fixture(scope="module")
def stream_runs(tmp_path_factory):
    """``(folder, train flags)``: ``folder/default`` trained on one device, ``folder/mirrored`` on two."""
    work = tmp_path_factory.mktemp("stream")
    glob, vocab = tiny_corpus(work, repeats=20)
    args = ["--corpus", glob, "--vocab", str(vocab), *map(str, STREAM)]
    done = forks.run([sys.executable, "-c", ONE_AND_MIRRORED, str(work), *args], cwd=ROOT, timeout=600,
                          env=dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3"),
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("2 replicas train together") == 1, done.stdout
    assert ("lm_app train: error: --batch-size 7 does not split evenly over 2 replicas: give a multiple of 2, "
            "each replica carries its own rows\n") in done.stderr
    return work, args


def assert_same_run(folder, reference, scored=True):
    """The same weights and carried state as the reference run, within float rounding, and the same scores."""
    ours, theirs = (model_variables(f, ("model/", "states/")) for f in (folder, reference))
    assert ours.keys() == theirs.keys() and any(n.startswith("states/") for n in ours)
    for name in ours:
        np.testing.assert_allclose(ours[name], theirs[name], rtol=1e-5, atol=1e-6, err_msg=name)
    if not scored:  # a worker other than the chief writes no metrics.json
        return
    scores, expected = (json.loads((f / "metrics.json").read_text()) for f in (folder, reference))
    for split in ("valid", "test"):
        assert scores[split]["perplexity"] == pytest.approx(expected[split]["perplexity"], rel=1e-5)


@pytest.mark.slow
def test_the_stream_mirrored_on_two_devices_trains_as_one_device(stream_runs):
    work, _ = stream_runs
    assert_same_run(work / "mirrored", work / "default")


def newest_save(folder):
    """The number of the newest checkpoint in ``folder``'s index, 0 before the first."""
    index = folder / "checkpoints" / "checkpoint"
    found = re.search(r'^model_checkpoint_path: "ckpt-(\d+)"', index.read_text() if index.exists() else "", re.M)
    return int(found[1]) if found else 0


def kill_cluster(workers, first, folders, after):
    """``kill -9`` worker ``first``, then the other, once each of ``folders`` holds a checkpoint newer than ``after``.

    Both: the workers save together, but one may finish writing first; killed then,
    the other has no checkpoint and the resume starts over (no "resuming" line).
    """
    while min(map(newest_save, folders)) <= after:
        assert all(w.poll() is None for w in workers), "a worker ended before it was killed"
        time.sleep(0.02)
    for worker in (workers[first], workers[1 - first]):
        worker.kill()
        worker.wait()


@pytest.mark.slow
def test_two_stream_workers_killed_and_resumed_reach_the_weights_of_one_process(stream_runs, tmp_path):
    """Each worker carries half the rows; ``kill -9`` after their first save (worker 1, then the chief), resumed.

    Which worker dies first matters only by the saves the other makes after it:
    the tests of :func:`restore` with ``agree`` cover a lag either way.
    """
    work, args = stream_runs
    chief, other = tmp_path / "lm", tmp_path / "lm.worker-1"
    log = tmp_path / "worker.log"
    kill_cluster(start_workers(chief, *args, log=log), 1, (other, chief), after=0)
    assert not (chief / "saved_model.pb").exists()
    workers = start_workers(chief, *args, "--resume", log=log)
    assert [w.wait(timeout=600) for w in workers] == [0, 0], Path(f"{log}.0").read_text()[-3000:]
    for index in range(2):
        assert "resuming at epoch 1, step " in Path(f"{log}.{index}").read_text()  # 5 unless a worker was quick
    assert_same_run(chief, work / "default")
    assert_same_run(other, work / "default", scored=False)

"""Training across processes with tf.distribute: two workers on localhost end with the same weights."""
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import ROOT, assert_usage_error, run_cli, tiny_corpus, train_cli

pytestmark = pytest.mark.slow

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
    predicted = run_cli("predict", "--model-dir", model_dir, "--json", "the dog ran to the")
    assert predicted.returncode == 0, predicted.stderr
    assert json.loads(predicted.stdout)["prediction"]


def test_mirrored_strategy_trains_on_the_local_devices(tmp_path):
    glob, vocab = tiny_corpus(tmp_path, repeats=10)
    train_cli(glob, vocab, tmp_path / "lm", "--strategy", "mirrored", *FLAGS)
    assert (tmp_path / "lm" / "saved_model.pb").exists()


def test_multi_worker_needs_tf_config(tmp_path, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert_usage_error(run_cli("train", "--strategy", "multi-worker", "--model-dir", tmp_path / "lm"),
                       "needs the TF_CONFIG")

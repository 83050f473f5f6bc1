"""``train --preset notes``: the notes' predictor (one-hot input, a 30-unit simple RNN), as a flag."""
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from lm_app.cli import make_parser
from lm_app.config import PRESETS, TrainConfig
from tests.conftest import (assert_one_line_error, main_in_process, run_cli_in_process, tiny_corpus,
                            train_cli)

NOTES = {"embedding": "onehot", "arch": "rnn", "hidden": 30, "layers": 1, "optimizer": "adam",
         "learning_rate": 0.005, "batch_size": 128, "valid_fraction": 0.2, "test_fraction": 0.0,
         "window": 5, "lr_decay": 1.0, "objective": "window", "preset": "notes"}


def parsed(*argv):
    return TrainConfig.from_flags(vars(make_parser().parse_args(["train", *map(str, argv)])))


def test_the_preset_is_the_notes_configuration():
    assert {k: v for k, v in dataclasses.asdict(parsed("--preset", "notes")).items() if k in NOTES} == NOTES
    assert set(PRESETS["notes"]) | {"preset"} == set(NOTES)


def test_typed_flags_override_the_preset():
    cfg = parsed("--preset", "notes", "--hidden", 50, "--embedding", 16, "--epochs", 2)
    assert (cfg.hidden, cfg.embedding, cfg.epochs) == (50, 16, 2)
    assert (cfg.arch, cfg.learning_rate, cfg.valid_fraction, cfg.test_fraction) == ("rnn", 0.005, 0.2, 0.0)
    # a typed held-out corpus replaces the preset's share of it, rather than clashing with it
    cfg = parsed("--preset", "notes", "--test-corpus", "corpus/*.txt")
    assert (cfg.test_corpus, cfg.test_fraction, cfg.valid_fraction) == ("corpus/*.txt", 0.1, 0.2)
    cfg.validate()
    assert parsed("--embedding", "onehot").embedding == "onehot"


@pytest.mark.parametrize("argv, fragment", [
    (["--preset", "notes", "--objective", "stream"], "--embedding onehot acts with --objective window"),
    (["--embedding", "onehot", "--arch", "attention"], "--arch rnn, lstm or gru only"),
    (["--embedding", "0"], "--embedding must be a positive integer or onehot, got 0"),
])
def test_onehot_where_it_cannot_act_is_refused_in_one_line(argv, fragment, capsys):
    code, _, err = main_in_process("train", *argv, capsys=capsys)
    assert_one_line_error(code, err, "train", fragment)


def test_a_misspelt_onehot_or_preset_is_argparses_error(capsys):
    for argv in (["--embedding", "one-hot"], ["--preset", "note"]):
        code, _, err = main_in_process("train", *argv, capsys=capsys)
        assert code == 2 and "argument --" in err and "Traceback" not in err


@pytest.mark.slow
def test_a_tiny_preset_run_trains_exports_and_resumes(tmp_path):
    glob, vocab = tiny_corpus(tmp_path)
    model_dir = tmp_path / "notes"
    trained = train_cli(glob, vocab, model_dir, "--preset", "notes", "--epochs", 3, run=run_cli_in_process)
    assert "validation accuracy" in trained.stdout and "test accuracy" not in trained.stdout  # 4:1, no test part
    config = json.loads((model_dir / "config.json").read_text())
    assert {k: config[k] for k in NOTES} == NOTES and config["epochs"] == 3
    history = json.loads((model_dir / "history.json").read_text())
    assert history["loss"][-1] < history["loss"][0]

    # the SavedModel serves the one-hot model: its probabilities are the Keras model's
    import tensorflow as tf

    from lm_app.models import model_from_config

    model = model_from_config(TrainConfig.from_dict(config), config["vocab_size"])
    model.load_weights(model_dir / "checkpoints" / "best.weights.h5")
    out = tf.saved_model.load(str(model_dir)).signatures["serving_default"](text=tf.constant(["the dog ran to the"]))
    words = [line.split("\t")[0] for line in (model_dir / "vocab.txt").read_text().splitlines()]
    ids = np.array([[words.index(w.decode()) for w in out["context"].numpy()[0]]], np.int32)
    np.testing.assert_allclose(out["probabilities"].numpy(), tf.nn.softmax(model(ids)).numpy(), atol=1e-5)
    from lm_app import tflite

    converted = tflite.export_tflite(model_dir)
    assert converted["select_tf_ops"] is False
    np.testing.assert_allclose(tflite.run_tflite(Path(converted["path"]).read_bytes(), ids),
                               out["probabilities"].numpy(), atol=1e-5, rtol=0)
    predicted = run_cli_in_process("predict", "--model-dir", model_dir, "the dog ran to the")
    assert predicted.returncode == 0 and predicted.stdout.startswith("Prediction: "), predicted.stderr

    # --resume keeps the preset's settings (typing the preset again is no change), here for one more epoch
    resumed = run_cli_in_process("train", "--resume", "--model-dir", model_dir, "--preset", "notes", "--epochs", 4)
    assert resumed.returncode == 0, resumed.stderr
    config = json.loads((model_dir / "config.json").read_text())
    assert {k: config[k] for k in NOTES} == NOTES and config["epochs"] == 4
    assert len(json.loads((model_dir / "history.json").read_text())["loss"]) == 4

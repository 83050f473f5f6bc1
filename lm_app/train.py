"""Training: the windowed objective with Keras ``fit``, checkpoints, logs and curves, then export.

Everything a later command needs is written into the model folder: the best
weights (``checkpoints/best.weights.h5``), ``history.json``, ``curves.png``,
TensorBoard logs (``logs/``), ``config.json`` and finally the SavedModel.
"""
import dataclasses
import json
import math
import sys
from pathlib import Path

import keras

from . import data, export, plot
from .atomic import atomic_path, write_json
from .corpus import Vocabulary, find_files
from .config import TrainConfig
from .errors import UsageError
from .models import build_model


class EpochRecorder(keras.callbacks.Callback):
    """After each epoch: keep the best weights and rewrite history.json and curves.png.

    Each file is replaced atomically, so a run killed at any moment leaves the
    previous epoch's files intact.
    """

    def __init__(self, model_dir):
        super().__init__()
        self.dir = Path(model_dir)
        self.best = math.inf
        self.history = {}

    @property
    def best_weights(self):
        return self.dir / "checkpoints" / "best.weights.h5"

    def on_epoch_end(self, epoch, logs=None):
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))
        val_loss = (logs or {}).get("val_loss", math.inf)
        if val_loss < self.best:
            self.best = val_loss
            self.best_weights.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(self.best_weights) as tmp:
                weights = tmp.with_name(tmp.name + ".weights.h5")  # Keras insists on the suffix
                self.model.save_weights(weights)
                weights.replace(tmp)
        write_json(self.dir / "history.json", self.history)
        with atomic_path(self.dir / "curves.png") as tmp:
            tmp.write_bytes(plot.curves_png(self.history))


def check_config(cfg):
    for name in ("window", "embedding", "hidden", "layers", "epochs", "batch_size", "top_k"):
        if getattr(cfg, name) <= 0:
            raise UsageError(f"--{name.replace('_', '-')} must be positive")
    if cfg.learning_rate <= 0:
        raise UsageError("--learning-rate must be positive")
    if not 0 < cfg.valid_fraction <= 0.5:
        raise UsageError("--valid-fraction must be in (0, 0.5]")


def compile_model(model, cfg):
    optimizer = keras.optimizers.Adam(cfg.learning_rate, global_clipnorm=cfg.clip_norm or None)
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
                 keras.metrics.SparseTopKCategoricalAccuracy(k=5, name="top5")],
    )


def train(cfg, verbose=None, log=print):
    """Train, evaluate the best weights on the held-out split, export; return the metrics."""
    check_config(cfg)
    if verbose is None:  # a progress bar on a terminal, one line per epoch in a log file
        verbose = 1 if sys.stdout.isatty() else 2
    vocab = Vocabulary.load(cfg.vocab)
    files = find_files(cfg.corpus)
    keras.utils.set_random_seed(cfg.seed)
    train_ds, valid_ds = data.window_splits(files, vocab, cfg.window, cfg.batch_size,
                                            cfg.valid_fraction, cfg.seed)
    n_train, n_valid = data.count_batches(train_ds), data.count_batches(valid_ds)
    if n_train == 0 or n_valid == 0:
        raise UsageError(
            f"the corpus {cfg.corpus!r} is too small for windows of {cfg.window} words "
            "plus a validation split (windows never cross files)")
    log(f"{len(files)} file(s), vocabulary {len(vocab)}, "
        f"{n_train} training and {n_valid} validation batches of {cfg.batch_size}")

    model = build_model(len(vocab), cfg.arch, cfg.embedding, cfg.hidden, cfg.layers,
                        cfg.dropout, cfg.seed)
    compile_model(model, cfg)
    model_dir = Path(cfg.model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    recorder = EpochRecorder(model_dir)
    callbacks = [
        recorder,
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=cfg.patience),
        keras.callbacks.TensorBoard(log_dir=str(model_dir / "logs"), write_graph=False,
                                    profile_batch=0),
    ]
    # One endless iterator with a fixed epoch length: no iterator is torn down at
    # each epoch end, where TF 2.21's tf.data can stall.
    model.fit(train_ds.repeat(), steps_per_epoch=n_train, validation_data=valid_ds,
              epochs=cfg.epochs, callbacks=callbacks, verbose=verbose,
              shuffle=False)  # the dataset shuffles itself

    model.load_weights(recorder.best_weights)
    results = model.evaluate(valid_ds, verbose=0, return_dict=True)
    metrics = {
        "loss": results["loss"],
        "perplexity": math.exp(results["loss"]),
        "accuracy": results["accuracy"],
        "top5": results["top5"],
        "epochs": len(recorder.history.get("loss", [])),
    }
    config = dict(dataclasses.asdict(cfg), vocab_size=len(vocab), mode=vocab.mode,
                  vocab_sha256=vocab.meta["sha256"])
    export.export(model, cfg.vocab, model_dir, cfg.window, vocab.mode, cfg.top_k, extra_files={
        "config.json": (json.dumps(config, indent=2, sort_keys=True) + "\n").encode(),
        "metrics.json": (json.dumps(metrics, indent=2, sort_keys=True) + "\n").encode(),
    })
    return metrics



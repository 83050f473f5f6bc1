"""Training: a plain, commented loop whose every step can be resumed after ``kill -9``.

Why not ``Model.fit``: fit resumes only at epoch boundaries and does not save
the data position or the dropout seeds, so an interrupted run could not end
with the weights an uninterrupted one reaches.  Here the whole state -- every
model variable (dropout seeds included), the optimizer, the running metrics and
a JSON record of epoch, step, best loss, patience and history -- goes into one
``tf.train.Checkpoint``, which TensorFlow writes before it points the
``checkpoint`` index at it.  Each epoch's data order is a pure function of
``(seed, epoch)``, so resuming at step ``s`` just skips ``s`` batches.

The model folder receives the best weights (``checkpoints/best.weights.h5``),
``history.json``, ``curves.png``, TensorBoard logs (``logs/``), ``config.json``,
``metrics.json`` and, at the end, the SavedModel.
"""
import dataclasses
import json
import math
import shutil
import sys
from pathlib import Path

import keras
import tensorflow as tf

from . import data, export, plot
from .atomic import FolderLock, atomic_path, read_json, write_json
from .config import TrainConfig
from .corpus import Vocabulary, find_files
from .errors import UsageError
from .models import build_model

STATE = "checkpoints"


def check_config(cfg):
    for name in ("window", "embedding", "hidden", "layers", "epochs", "batch_size", "top_k"):
        if getattr(cfg, name) <= 0:
            raise UsageError(f"--{name.replace('_', '-')} must be positive")
    if cfg.learning_rate <= 0:
        raise UsageError("--learning-rate must be positive")
    if cfg.save_every < 0 or cfg.clip_norm < 0:
        raise UsageError("--save-every and --clip-norm must be 0 or more")
    if not 0 < cfg.valid_fraction <= 0.5:
        raise UsageError("--valid-fraction must be in (0, 0.5]")


class Metrics:
    """Running sums of loss, correct and top-5 predictions, as variables so checkpoints keep them."""

    def __init__(self):
        self.sums = tf.Variable(tf.zeros([4], tf.float64), trainable=False)  # loss, top1, top5, count

    def reset(self):
        self.sums.assign(tf.zeros([4], tf.float64))

    def update(self, labels, logits, loss):
        n = tf.cast(tf.size(labels), tf.float64)
        top1 = tf.reduce_sum(tf.cast(tf.math.in_top_k(labels, logits, 1), tf.float64))
        top5 = tf.reduce_sum(tf.cast(tf.math.in_top_k(labels, logits, 5), tf.float64))
        self.sums.assign_add(tf.stack([tf.cast(loss, tf.float64) * n, top1, top5, n]))

    def result(self):
        loss, top1, top5, n = self.sums.numpy()
        n = max(n, 1.0)
        return {"loss": loss / n, "accuracy": top1 / n, "top5": top5 / n}


class Trainer:
    """The model, its optimizer and the compiled steps of the windowed objective."""

    def __init__(self, model, cfg):
        self.model = model
        self.optimizer = keras.optimizers.Adam(cfg.learning_rate,
                                               global_clipnorm=cfg.clip_norm or None)
        self.optimizer.build(model.trainable_variables)
        self.loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        self.train_metrics, self.eval_metrics = Metrics(), Metrics()
        # Batches done in this epoch, counted inside the compiled step: a Ctrl-C that lands
        # between the step and Python's bookkeeping cannot make the two disagree.
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False)
        spec = (tf.TensorSpec([None, cfg.window], tf.int32), tf.TensorSpec([None], tf.int32))
        self.train_step = tf.function(self._train_step, input_signature=spec)
        self.eval_step = tf.function(self._eval_step, input_signature=spec)

    def _train_step(self, x, y):
        with tf.GradientTape() as tape:
            logits = self.model(x, training=True)
            loss = self.loss(y, logits)
        grads = tape.gradient(loss, self.model.trainable_variables)
        self.optimizer.apply(grads, self.model.trainable_variables)
        self.train_metrics.update(y, logits, loss)
        self.step.assign_add(1)
        return loss

    def _eval_step(self, x, y):
        logits = self.model(x, training=False)
        self.eval_metrics.update(y, logits, self.loss(y, logits))

    def evaluate(self, batches):
        self.eval_metrics.reset()
        for x, y in batches:
            self.eval_step(x, y)
        return self.eval_metrics.result()

    def checkpoint(self, progress):
        """Everything that must survive a kill: all variables by position, and the progress record."""
        return tf.train.Checkpoint(
            model=[v.value for v in self.model.variables],  # .variables includes dropout seeds
            optimizer=[v.value for v in self.optimizer.variables],
            metrics=self.train_metrics.sums,
            step=self.step,
            progress=progress,
        )


def fresh_progress():
    return {"epoch": 0, "best": math.inf, "wait": 0, "history": {}, "done": False}


def prepare_run(cfg, resume, fresh, log):
    """The settings and vocabulary to train with: the saved ones when resuming, else a clean state."""
    state = Path(cfg.model_dir) / STATE
    saved = state / "run.json"
    if resume and saved.is_file():
        stored = read_json(saved, "saved run settings")
        known = {f.name for f in dataclasses.fields(TrainConfig)}
        resumed = TrainConfig(**{k: v for k, v in stored.items() if k in known})
        resumed.epochs = max(resumed.epochs, cfg.epochs)  # a finished run may train for longer
        vocab = Vocabulary.load(resumed.vocab)
        if vocab.meta["sha256"] != stored.get("vocab_sha256"):
            raise UsageError(f"the run in {cfg.model_dir} was trained with another vocabulary "
                             f"than {resumed.vocab}; train without --resume to start again")
        return resumed, vocab
    if resume:
        log(f"nothing to resume in {state}; starting a new run")
    elif saved.is_file() and not fresh and not read_json(saved, "saved run settings").get("finished"):
        raise UsageError(f"{cfg.model_dir} holds an unfinished run: add --resume to continue it, "
                         "or --fresh to discard it")
    vocab = Vocabulary.load(cfg.vocab)
    shutil.rmtree(state, ignore_errors=True)
    state.mkdir(parents=True)
    write_json(saved, dict(dataclasses.asdict(cfg), vocab_sha256=vocab.meta["sha256"]))
    return cfg, vocab


def train(cfg, resume=False, fresh=False, verbose=None, log=print):
    """Train (or resume), evaluate the best weights on the held-out split, export; return metrics.

    A folder with an unfinished run is only touched with ``resume`` (continue
    it) or ``fresh`` (discard it), so a forgotten flag never throws work away.
    """
    check_config(cfg)
    model_dir = Path(cfg.model_dir)
    with FolderLock(model_dir):
        cfg, vocab = prepare_run(cfg, resume, fresh, log)
        return _train_locked(cfg, vocab, verbose, log)


def _train_locked(cfg, vocab, verbose, log):
    if verbose is None:  # a progress bar on a terminal, one line per epoch in a log file
        verbose = 1 if sys.stdout.isatty() else 2
    model_dir = Path(cfg.model_dir)
    state = model_dir / STATE
    files = find_files(cfg.corpus)
    train_windows = data.window_dataset(files, vocab, cfg.window, "train", cfg.valid_fraction)
    valid = data.batched(data.window_dataset(files, vocab, cfg.window, "valid", cfg.valid_fraction),
                         cfg.batch_size)
    n_train = data.count_batches(data.batched(train_windows, cfg.batch_size))
    n_valid = data.count_batches(valid)
    if n_train == 0 or n_valid == 0:
        raise UsageError(
            f"the corpus {cfg.corpus!r} is too small for windows of {cfg.window} words "
            "plus a validation split (windows never cross files)")
    log(f"{len(files)} file(s), vocabulary {len(vocab)}, "
        f"{n_train} training and {n_valid} validation batches of {cfg.batch_size}")

    keras.utils.set_random_seed(cfg.seed)
    model = build_model(len(vocab), cfg.arch, cfg.embedding, cfg.hidden, cfg.layers,
                        cfg.dropout, cfg.seed, cfg.peephole)
    trainer = Trainer(model, cfg)
    progress_var = tf.Variable(json.dumps(fresh_progress()), trainable=False)
    manager = tf.train.CheckpointManager(trainer.checkpoint(progress_var), str(state), max_to_keep=2)
    if manager.latest_checkpoint:
        manager.checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
    p = json.loads(progress_var.numpy().decode())
    if p["epoch"] or int(trainer.step.numpy()):
        log(f"resuming at epoch {p['epoch'] + 1}, step {int(trainer.step.numpy())}")

    def save():
        progress_var.assign(json.dumps(p))
        manager.save()

    best_weights = state / "best.weights.h5"
    writers = {split: tf.summary.create_file_writer(str(model_dir / "logs" / split))
               for split in ("train", "validation")}
    try:
        while p["epoch"] < cfg.epochs and not p["done"]:
            epoch = p["epoch"]
            bar = keras.utils.Progbar(n_train, verbose=verbose,
                                      stateful_metrics=["loss", "accuracy", "top5"])
            if verbose == 2:
                print(f"Epoch {epoch + 1}/{cfg.epochs}")
            done = int(trainer.step.numpy())
            if done == 0:
                trainer.train_metrics.reset()
            # The order of an epoch depends only on (seed, epoch): resuming skips what was done.
            batches = data.batched(train_windows, cfg.batch_size, shuffle=True,
                                   seed=cfg.seed * 100_003 + epoch).skip(done)
            for x, y in batches:
                trainer.train_step(x, y)
                done += 1
                if cfg.save_every and done % cfg.save_every == 0:
                    save()
                if verbose == 1:
                    bar.update(done, list(trainer.train_metrics.result().items()))
            logs = trainer.train_metrics.result()
            logs.update({f"val_{k}": v for k, v in trainer.evaluate(valid).items()})
            logs["val_perplexity"] = math.exp(min(logs["val_loss"], 700))
            bar.update(n_train, list(logs.items()), finalize=True)
            for key, value in logs.items():
                p["history"].setdefault(key, []).append(float(value))
            record_epoch(writers, epoch, logs, trainer.optimizer)
            if logs["val_loss"] < p["best"]:
                p["best"], p["wait"] = logs["val_loss"], 0
                with atomic_path(best_weights) as tmp:
                    keras_path = tmp.with_name(tmp.name + ".weights.h5")  # Keras wants the suffix
                    model.save_weights(keras_path)
                    keras_path.replace(tmp)
            else:
                p["wait"] += 1
                p["done"] = p["wait"] >= cfg.patience
            write_json(model_dir / "history.json", p["history"])
            with atomic_path(model_dir / "curves.png") as tmp:
                tmp.write_bytes(plot.curves_png(p["history"]))
            p["epoch"] = epoch + 1
            trainer.step.assign(0)
            save()
    except KeyboardInterrupt:
        save()
        log(f"\ninterrupted: state saved in {state}; `train --resume` continues")
        if best_weights.exists():
            finish(trainer, cfg, vocab, valid, best_weights, p, log, complete=False)
        raise
    return finish(trainer, cfg, vocab, valid, best_weights, p, log)


def record_epoch(writers, epoch, logs, optimizer):
    """TensorBoard scalars: loss, accuracy, top-5, perplexity and the learning rate."""
    with writers["train"].as_default():
        for key in ("loss", "accuracy", "top5"):
            tf.summary.scalar(key, logs[key], step=epoch + 1)
        tf.summary.scalar("perplexity", math.exp(min(logs["loss"], 700)), step=epoch + 1)
        tf.summary.scalar("learning_rate", float(optimizer.learning_rate.numpy()), step=epoch + 1)
    with writers["validation"].as_default():
        for key in ("loss", "accuracy", "top5", "perplexity"):
            tf.summary.scalar(key, logs[f"val_{key}"], step=epoch + 1)
    for writer in writers.values():
        writer.flush()


def finish(trainer, cfg, vocab, valid, best_weights, p, log, complete=True):
    """Evaluate the best weights on the held-out split and export them."""
    trainer.model.load_weights(best_weights)
    results = trainer.evaluate(valid)
    metrics = {
        "loss": results["loss"],
        "perplexity": math.exp(min(results["loss"], 700)),
        "accuracy": results["accuracy"],
        "top5": results["top5"],
        "epochs": len(p["history"].get("loss", [])),
    }
    config = dict(dataclasses.asdict(cfg), vocab_size=len(vocab), mode=vocab.mode,
                  vocab_sha256=vocab.meta["sha256"])
    export.export(trainer.model, cfg.vocab, cfg.model_dir, cfg.window, vocab.mode, cfg.top_k,
                  extra_files={
                      "config.json": (json.dumps(config, indent=2, sort_keys=True) + "\n").encode(),
                      "metrics.json": (json.dumps(metrics, indent=2, sort_keys=True) + "\n").encode(),
                  })
    if complete:
        run = Path(cfg.model_dir) / STATE / "run.json"
        write_json(run, dict(read_json(run, "saved run settings"), finished=True))
    log(f"exported the model to {cfg.model_dir}")
    return metrics

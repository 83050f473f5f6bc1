"""Training: a plain, commented loop whose every step can be resumed after ``kill -9``.

Why not ``Model.fit``: fit resumes only at epoch boundaries and does not save
the data position or the dropout seeds, so an interrupted run could not end
with the weights an uninterrupted one reaches.  Here the whole state -- every
model variable (dropout seeds included), the optimizer, the running metrics,
the recurrent state carried between chunks and a JSON record of epoch, best
loss, patience and history -- goes into one ``tf.train.Checkpoint``, which
TensorFlow writes before it points the ``checkpoint`` index at it.  Each
epoch's data order is a pure function of ``(seed, epoch)``, so resuming at step
``s`` just skips ``s`` batches.

The loop reads top to bottom: epochs of steps, an evaluation, a save.  What
the steps train on is the objective's (``lm_app/objectives/``: ``window``, the
notes'; ``stream``, PyTorch's ``word_language_model``); the compiled steps are
``trainer.py``'s, the run record and checkpoints ``checkpoint.py``'s, and
strategies and workers ``distribute.py``'s.

The model folder receives the best weights (``checkpoints/best.weights.h5``),
``history.json``, ``curves.png``, TensorBoard logs (``logs/``), ``config.json``,
``metrics.json`` and, at the end, the SavedModel.
"""
import copy
import dataclasses
import json
import sys
import time
from pathlib import Path

import keras
import tensorflow as tf

from . import export, plot
from .atomic import FolderLock, atomic_path, read_json, recover, remove_stale, write_json
from .checkpoint import STATE, fresh_progress, prepare_run, restore
from .corpus import find_files, mode_mismatch
from .distribute import Pace, as_worker, make_strategy, resuming
from .errors import UsageError
from .losses import perplexity
from .objectives import SPLIT_NAMES, make_objective
from .process import interrupts_held
from .trainer import Trainer


def train(cfg, resume=False, fresh=False, verbose=None, log=print, on_epoch=None, given=None,
          force=False):
    """Train (or resume), score the best weights on the held-out parts, export; return metrics.

    A folder with an unfinished run is only touched with ``resume`` (continue
    it) or ``fresh`` (discard it), so a forgotten flag never throws work away.
    ``given`` names the settings the user chose (the CLI: the flags typed; by
    default those that differ from TrainConfig's defaults): resuming refuses
    those that would change the run, and keeps the run's own for the rest.
    ``force`` resumes on a corpus that changed since the run began.
    ``on_epoch(logs)``, if given, is called after each epoch has been saved
    (the benchmark uses it to hand the CPU to the other side between epochs).
    """
    if not resume:  # a resumed run's settings are checked once merged with the typed ones
        cfg.validate()
    if given is None:
        given = cfg.changed()
    strategy = make_strategy(cfg.strategy)
    index, cfg = as_worker(cfg, log)
    recover(cfg.model_dir)  # before the lock makes the folder: a kill may have left only <model>.old
    with FolderLock(Path(cfg.model_dir)):
        for folder in (Path(cfg.model_dir), Path(cfg.model_dir) / STATE):
            remove_stale(folder)
        cfg, vocab = prepare_run(cfg, resume, fresh, log, given, force)
        return _train_locked(cfg, vocab, verbose, log, strategy, chief=index == 0, on_epoch=on_epoch)


def _train_locked(cfg, vocab, verbose, log, strategy=None, chief=True, on_epoch=None):
    if verbose is None:  # a progress bar on a terminal, one line per epoch in a log file
        verbose = 1 if sys.stdout.isatty() else 2
    model_dir = Path(cfg.model_dir)
    state = model_dir / STATE
    files = find_files(cfg.corpus)
    mismatch = mode_mismatch(files, vocab)
    if mismatch:
        print(f"lm_app train: warning: {mismatch}", file=sys.stderr)
    objective = make_objective(cfg, vocab, files)
    log(f"{len(files)} file(s), vocabulary {len(vocab)}, {objective.describe}")

    keras.utils.set_random_seed(cfg.seed)
    trainer = Trainer(objective, len(vocab), cfg, strategy)
    if trainer.strategy.num_replicas_in_sync > 1:
        log(f"{trainer.strategy.num_replicas_in_sync} replicas train together")
    model = trainer.model
    progress_var = tf.Variable(json.dumps(fresh_progress(cfg)), trainable=False)
    kept, agree = resuming(cfg.strategy, strategy)
    manager = tf.train.CheckpointManager(trainer.checkpoint(progress_var), str(state), max_to_keep=kept)
    restore(manager, log, agree)
    # p is the progress as last committed: what Ctrl-C saves, whatever instant it lands at.
    p = json.loads(progress_var.numpy().decode())
    trainer.optimizer.learning_rate.assign(p["learning_rate"])
    if p["epoch"] or int(trainer.step.numpy()):
        log(f"resuming at epoch {p['epoch'] + 1}, step {int(trainer.step.numpy()) - p['first_step']}")

    def save(progress):
        """Commit ``progress`` with the variables; the learning rate is part of the progress."""
        with interrupts_held():  # a commit is whole: a Ctrl-C inside it stops the run after it
            progress_var.assign(json.dumps(progress))
            trainer.optimizer.learning_rate.assign(progress["learning_rate"])
            try:
                manager.save()
            except tf.errors.OpError as e:
                raise UsageError(f"cannot save the training state in {state}: {e.message}") from None

    def end_epoch(epoch, logs):
        """The epoch's end as one commit: the new progress exists only in ``after`` until save().

        Before the commit, Ctrl-C saves the progress as it was (all steps done,
        the epoch not closed), and a resume redoes this end with the same
        weights, so reaches the same history, best weights and learning rate.
        Rewriting the files below again on that redo is harmless.
        """
        after = copy.deepcopy(p)
        for key, value in logs.items():
            after["history"].setdefault(key, []).append(float(value))
        if logs["val_loss"] < after["best"]:
            after["best"], after["wait"] = logs["val_loss"], 0
            with atomic_path(best_weights, suffix=".weights.h5") as tmp:  # Keras wants the suffix
                model.save_weights(tmp)
        else:
            # No better on held-out text: a smaller step often finds the way down again.
            after["wait"] += 1
            after["done"] = after["wait"] >= cfg.patience
            after["learning_rate"] /= cfg.lr_decay
        after["epoch"], after["first_step"] = epoch + 1, int(trainer.step.numpy())
        record_epoch(writers, epoch, logs)
        write_json(model_dir / "history.json", after["history"])
        curves.epoch_end(after["history"])
        save(after)
        return after

    best_weights = state / "best.weights.h5"
    curves = plot.Curves(model_dir / "curves.png")
    writers = {split: tf.summary.create_file_writer(str(model_dir / "logs" / split))
               for split in ("train", "validation")}
    n_train = objective.n_train
    pace = Pace.for_strategy(cfg.strategy)
    try:
        while p["epoch"] < cfg.epochs and not p["done"]:
            epoch = p["epoch"]
            bar = keras.utils.Progbar(n_train, verbose=verbose,
                                      stateful_metrics=["loss", "accuracy", "top5"])
            if verbose == 2:
                print(f"Epoch {epoch + 1}/{cfg.epochs}")
            done = int(trainer.step.numpy()) - p["first_step"]
            started = time.perf_counter()
            if done == 0:
                trainer.train_metrics.reset()
                objective.start_epoch()
            seen = 0
            batches = iter(trainer.distribute(objective.batches(epoch, done)))
            while done < n_train:
                count = pace.steps(n_train - done, cfg.save_every - done % cfg.save_every
                                   if cfg.save_every else n_train)
                call_started = time.perf_counter()
                seen += int(trainer.train_steps(batches, tf.constant(count)))
                pace.took(count, time.perf_counter() - call_started)
                done += count
                if cfg.save_every and done % cfg.save_every == 0:
                    save(p)
                if verbose == 1:
                    bar.update(done, list(trainer.train_metrics.result().items()))
            seconds = time.perf_counter() - started
            logs = trainer.train_metrics.result()
            logs["seconds"] = seconds
            logs["tokens_per_second"] = seen / max(seconds, 1e-9)  # predicted tokens
            logs.update({f"val_{k}": v for k, v in trainer.evaluate().items()})
            logs["val_perplexity"] = perplexity(logs["val_loss"])
            logs["learning_rate"] = p["learning_rate"]
            # Keras shows every value with four decimals; the speed reads better rounded, on its own line.
            speed = ("seconds", "tokens_per_second")
            bar.update(n_train, [(k, v) for k, v in logs.items() if k not in speed], finalize=True)
            if verbose:
                print(f"training: {seconds:.1f} s, {logs['tokens_per_second']:,.0f} tokens/s")
            p = end_epoch(epoch, logs)
            if on_epoch:
                on_epoch(logs)
    except (KeyboardInterrupt, ImportError) as e:
        # A Ctrl-C inside a C extension's first import (matplotlib's, at the first curve drawn)
        # surfaces as an ImportError caused by the KeyboardInterrupt: the same interrupt.
        if not isinstance(e, KeyboardInterrupt) and not isinstance(e.__cause__, KeyboardInterrupt):
            raise
        save(p)
        log(f"\ninterrupted: state saved in {state}; `train --resume` continues")
        curves.final(p["history"])
        if best_weights.exists():
            finish(trainer, cfg, vocab, best_weights, p, log, complete=False, chief=chief)
        raise KeyboardInterrupt from None
    curves.final(p["history"])
    return finish(trainer, cfg, vocab, best_weights, p, log, chief=chief)


def record_epoch(writers, epoch, logs):
    """TensorBoard scalars: loss, accuracy, top-5, perplexity and the learning rate."""
    with writers["train"].as_default():
        for key in ("loss", "accuracy", "top5", "learning_rate"):
            tf.summary.scalar(key, logs[key], step=epoch + 1)
        tf.summary.scalar("perplexity", perplexity(logs["loss"]), step=epoch + 1)
    with writers["validation"].as_default():
        for key in ("loss", "accuracy", "top5", "perplexity"):
            tf.summary.scalar(key, logs[f"val_{key}"], step=epoch + 1)
    for writer in writers.values():
        writer.flush()


def finish(trainer, cfg, vocab, best_weights, p, log, complete=True, chief=True):
    """Score the best weights on each held-out part and export them (the chief only)."""
    trainer.model.load_weights(best_weights)
    metrics = {"epochs": len(p["history"].get("loss", []))}
    for split in trainer.objective.held_out:
        results = trainer.evaluate(split)
        metrics[split] = {key: float(results[key]) for key in ("loss", "accuracy", "top5")}
        metrics[split]["perplexity"] = perplexity(results["loss"])
        metrics[split].update(trainer.objective.extra_metrics(split))
    config = dict(dataclasses.asdict(cfg), vocab_size=len(vocab), mode=vocab.mode,
                  vocab_sha256=vocab.meta["sha256"])
    if not chief:
        return metrics
    extra_files = {"config.json": (json.dumps(config, indent=2, sort_keys=True) + "\n").encode(),
                   "metrics.json": (json.dumps(metrics, indent=2, sort_keys=True) + "\n").encode()}
    if hasattr(trainer.objective, "export"):  # a family with its own SavedModel (dialogue)
        trainer.objective.export(cfg.model_dir, cfg.vocab, vocab.mode, extra_files)
    else:
        export.export(trainer.model, cfg.vocab, cfg.model_dir, cfg.window, vocab.mode, cfg.top_k,
                      objective=cfg.objective, target_len=cfg.target_len if cfg.arch == "seq2seq" else None,
                      extra_files=extra_files)
    if complete:
        run = Path(cfg.model_dir) / STATE / "run.json"
        write_json(run, dict(read_json(run, "saved run settings"), finished=True))
    log(f"exported the model to {cfg.model_dir}")
    return metrics


def describe_metrics(metrics):
    """The final figures, each named with the part of the corpus it was measured on."""
    epochs = metrics["epochs"]
    why = {"test": "held out: neither trained on nor used to pick the weights",
           "valid": "picked the weights: " + ("1 epoch" if epochs == 1 else f"the best of {epochs} epochs")}
    return "\n".join(f"{SPLIT_NAMES[split]} accuracy {m['accuracy']:.1%}, top-5 accuracy {m['top5']:.1%}, "
                     f"perplexity {m['perplexity']:.1f} ({why[split]})"
                     for split, m in sorted(metrics.items(), key=lambda kv: kv[0] != "test") if split in why)

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

Two objectives share the loop (``--objective``):

* ``window`` (the notes'): shuffled windows of ``--window`` words, each
  predicting the word after it.
* ``stream`` (the standard protocol of PyTorch's ``word_language_model``): the
  token stream cut into ``--batch-size`` contiguous rows, read ``--bptt`` tokens
  at a time, every position predicting its next token, the recurrent state
  carried from chunk to chunk and reset at each epoch.

The model folder receives the best weights (``checkpoints/best.weights.h5``),
``history.json``, ``curves.png``, TensorBoard logs (``logs/``), ``config.json``,
``metrics.json`` and, at the end, the SavedModel.
"""
import copy
import dataclasses
import hashlib
import json
import math
import os
import re
import shutil
import sys
import time
from pathlib import Path

import keras
import tensorflow as tf

from . import data, export, losses, plot
from .atomic import FolderLock, atomic_path, read_json, recover, remove_stale, write_json
from .config import TrainConfig, flag
from .corpus import Vocabulary, find_files, mode_mismatch
from .errors import UsageError
from .models import stream_model, window_model

STATE = "checkpoints"
SPLIT_NAMES = {"valid": "validation", "test": "test"}
PATHS = ("corpus", "vocab", "valid_corpus", "test_corpus")  # settings that name files: kept absolute in run.json
SAMPLE_BYTES = 1 << 16  # the fingerprint hashes this much of each end of a corpus file


def make_strategy(name):
    """A tf.distribute strategy; create it before any other TensorFlow op (collectives need that)."""
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi-worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def worker_index():
    """This worker's index in TF_CONFIG; 0 (the chief) when there is no cluster."""
    config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    task = config.get("task", {})
    if task.get("type") == "chief" or not config:
        return 0
    return int(task.get("index", 0)) + ("chief" in config.get("cluster", {}))


def worker_folder(model_dir, index):
    """Where a worker other than the chief keeps its state: only the chief writes the model folder."""
    model_dir = Path(model_dir)
    return model_dir if index == 0 else model_dir.with_name(f"{model_dir.name}.worker-{index}")


class Metrics:
    """Running sums of loss, correct and top-5 predictions, as variables so checkpoints keep them.

    Each replica adds its own share; reading sums them (``ON_READ``/``SUM``).
    """

    def __init__(self):
        self.sums = tf.Variable(tf.zeros([4], tf.float64), trainable=False,  # loss, top1, top5, n
                                synchronization=tf.VariableSynchronization.ON_READ,
                                aggregation=tf.VariableAggregation.SUM)

    def reset(self):
        self.sums.assign(tf.zeros([4], tf.float64))

    def update(self, token_losses, ranks):
        """Add a batch: each token's loss, and its label's rank (top-k holds it when the rank is below k)."""
        self.sums.assign_add(losses.totals(token_losses, ranks))

    def result(self):
        loss, top1, top5, n = self.sums.numpy()
        n = max(n, 1.0)
        return {"loss": loss / n, "accuracy": top1 / n, "top5": top5 / n}


def make_optimizer(cfg):
    if cfg.optimizer == "sgd":
        return keras.optimizers.SGD(cfg.learning_rate)
    return keras.optimizers.Adam(cfg.learning_rate)


def clip_by_global_norm(grads, max_norm):
    """The notes' gradient clipping: every gradient scaled by ``max_norm / max(norm, max_norm)``.

    The embedding's sparse gradient holds one row per occurrence of a word;
    they are summed per word first, so the norm is the true gradient's (as
    PyTorch's ``clip_grad_norm_`` measures it).  Keras' ``global_clipnorm`` and
    ``tf.linalg.global_norm`` square the rows as they come, which
    underestimates the norm whenever a word repeats within a batch.
    """
    dense = [None if g is None else tf.convert_to_tensor(g) for g in grads]  # None: unused variable
    return tf.clip_by_global_norm(dense, max_norm)[0]


def held_out_sources(cfg):
    """``(part, its own files or None)`` for each held-out part: validation, and test unless its share is 0."""
    sources = [("valid", cfg.valid_corpus), ("test", cfg.test_corpus)]
    return [(split, find_files(glob) if glob else None) for split, glob in sources
            if glob or split == "valid" or cfg.test_fraction]


def held_out_parts(held_out):
    """'a validation part', or 'validation and test parts': for messages about the parts a run has."""
    names = [SPLIT_NAMES[split] for split in held_out]
    return f"a {names[0]} part" if len(names) == 1 else f"{' and '.join(names)} parts"


class WindowObjective:
    """Shuffled windows of ``cfg.window`` words; each predicts the word after it (seq2seq: the next ``target_len``)."""

    def __init__(self, cfg, vocab, files):
        self.cfg = cfg
        targets = cfg.target_len if cfg.arch == "seq2seq" else 1

        def windows(files, split):
            return data.window_dataset(files, vocab, cfg.window, split, *cfg.held_out_shares(), targets=targets)

        self.train_windows = windows(files, "train")
        # Validation picks the weights and drives early stopping and the learning rate; test only scores.
        self.held_out = {split: data.batched(windows(own, "all") if own else windows(files, split),
                                             cfg.batch_size)
                         for split, own in held_out_sources(cfg)}
        self.n_train = data.count_batches(data.batched(self.train_windows, cfg.batch_size))
        counts = {split: data.count_batches(ds) for split, ds in self.held_out.items()}
        if self.n_train == 0 or 0 in counts.values():
            raise UsageError(
                f"the corpus {cfg.corpus!r} is too small for windows of {cfg.window} words "
                f"plus {held_out_parts(self.held_out)} (windows never cross files)")
        self.describe = (f"{self.n_train} training, "
                         + ", ".join(f"{n} {SPLIT_NAMES[split]}" for split, n in counts.items())
                         + f" batches of {cfg.batch_size} windows")

    def build(self, vocab_size):
        self.model = window_model(self.cfg, vocab_size)
        return self.model

    def state_variables(self):
        return []

    def start_epoch(self):
        pass

    def batches(self, epoch, skip):
        # The order of an epoch depends only on (seed, epoch): resuming skips what was done.
        return data.batched(self.train_windows, self.cfg.batch_size, shuffle=True,
                            seed=self.cfg.seed * 100_003 + epoch).skip(skip)

    def token_losses(self, x, y, training):
        if self.cfg.arch == "seq2seq":  # teacher forcing: the decoder reads the true words
            logits = self.model((x, self.model.decoder_inputs(x, y)), training=training)
        else:
            logits = self.model(x, training=training)
        return losses.token_losses(y, logits, training)

    def evaluate(self, step, split):
        for x, y in self.held_out[split]:
            step(x, y)


class StreamObjective:
    """Contiguous rows read in chunks of ``cfg.bptt`` tokens, the state carried between chunks."""

    def __init__(self, cfg, vocab, files):
        self.cfg = cfg
        parts = dict(zip(("train", "valid", "test"),
                         data.split_stream(data.token_ids(files, vocab), *cfg.held_out_shares())))
        self.train_rows = data.batchify(parts["train"], cfg.batch_size)
        self.held_out = {split: data.batchify(data.token_ids(own, vocab) if own else parts[split],
                                              cfg.batch_size)
                         for split, own in held_out_sources(cfg)}
        if min(rows.shape[1] for rows in (self.train_rows, *self.held_out.values())) < 2:
            raise UsageError(f"the corpus {cfg.corpus!r} is too small for {cfg.batch_size} rows "
                             f"plus {held_out_parts(self.held_out)}; use a smaller --batch-size")
        self.n_train = data.count_chunks(self.train_rows, cfg.bptt)
        self.describe = (f"{self.train_rows.size:,} training tokens in {cfg.batch_size} rows, "
                         f"{self.n_train} chunks of {cfg.bptt}; "
                         + ", ".join(f"{rows.size:,} {SPLIT_NAMES[split]} tokens"
                                     for split, rows in self.held_out.items()))

    def build(self, vocab_size):
        cfg = self.cfg
        self.model = stream_model(cfg, vocab_size)
        # The state carried across chunks lives in variables, so checkpoints keep it.
        self.states = [tf.Variable(s, trainable=False)
                       for layer in self.model.zero_states(cfg.batch_size) for s in layer]
        return self.model

    def state_variables(self):
        return self.states

    def start_epoch(self):
        for s in self.states:
            s.assign(tf.zeros_like(s))

    def batches(self, epoch, skip):
        return data.stream_chunks(self.train_rows, self.cfg.bptt).skip(skip)

    def _nest(self, flat):
        k = self.model.states_per_layer
        return [list(flat[i:i + k]) for i in range(0, len(flat), k)]

    def token_losses(self, x, y, training):
        # Time-major: the order the recurrent loops run in, so no activation is ever transposed.
        scores, new = self.model.token_losses(tf.transpose(x), tf.transpose(y),
                                              self._nest([s.value() for s in self.states]), training)
        for var, value in zip(self.states, [s for layer in new for s in layer]):
            var.assign(value)
        return scores

    def evaluate(self, step, split):
        saved = [s.numpy() for s in self.states]
        self.start_epoch()
        for x, y in data.stream_chunks(self.held_out[split], self.cfg.bptt):
            step(x, y)
        for var, value in zip(self.states, saved):
            var.assign(value)


class Trainer:
    """The model, its optimizer and the compiled training and evaluation steps."""

    def __init__(self, objective, vocab_size, cfg, strategy=None):
        self.objective = objective
        self.clip_norm = cfg.clip_norm
        self.strategy = strategy or tf.distribute.get_strategy()
        with self.strategy.scope():  # weights mirrored on every replica and worker
            self.model = objective.build(vocab_size)
            self.optimizer = make_optimizer(cfg)
            self.optimizer.build(self.model.trainable_variables)
            self.train_metrics = Metrics()
            # Batches done in this epoch, counted inside the compiled step: a Ctrl-C that lands
            # between the step and Python's bookkeeping cannot make the two disagree.
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.eval_metrics = Metrics()  # each worker scores the whole held-out split itself
        # No autograph: the steps have no Python control flow on tensors, and converting them
        # made the first epoch's tracing markedly slower.
        self.train_step = tf.function(self._distributed_train_step, reduce_retracing=True, autograph=False)
        self.train_steps = tf.function(self._train_steps, autograph=False)
        self.eval_step = tf.function(self._eval_step, reduce_retracing=True, autograph=False)

    def distribute(self, batches):
        if self.strategy is tf.distribute.get_strategy():
            return batches
        return self.strategy.experimental_distribute_dataset(batches)

    def _distributed_train_step(self, x, y):
        loss = self.strategy.run(self._train_step, args=(x, y))
        self.step.assign_add(1)
        return self.strategy.reduce("SUM", loss, axis=None)

    def _train_steps(self, iterator, count):
        """``count`` training steps from ``iterator`` in one call; returns the tokens they predicted.

        Python's share of a call (dispatch, the next batch) is paid on every
        step by a Python loop; a loop in the graph pays it once per call, as
        Keras' ``steps_per_execution`` does.
        """
        def step(i, tokens):
            x, y = iterator.get_next()
            self._distributed_train_step(x, y)
            local = strategy_locals(self.strategy, y)
            return i + 1, tokens + tf.add_n([tf.size(t, out_type=tf.int64) for t in local])

        return tf.while_loop(lambda i, _: i < count, step, (tf.constant(0), tf.constant(0, tf.int64)))[1]

    def _train_step(self, x, y):
        with tf.GradientTape() as tape:
            token_losses, ranks = self.objective.token_losses(x, y, training=True)
            loss = tf.nn.compute_average_loss(token_losses)  # the mean over all replicas' tokens
        grads = tape.gradient(loss, self.model.trainable_variables)
        if self.clip_norm:
            grads = clip_by_global_norm(grads, self.clip_norm)
        self.optimizer.apply(grads, self.model.trainable_variables)
        self.train_metrics.update(token_losses, ranks)
        return loss

    def _eval_step(self, x, y):
        self.eval_metrics.update(*self.objective.token_losses(x, y, training=False))

    def evaluate(self, split="valid"):
        """Loss, accuracy and top-5 on a held-out part (``"valid"`` or ``"test"``), the dropout seeds kept.

        Keras' recurrent cells draw a dropout mask even when not training, so
        evaluating advanced the seeds: an epoch end redone after Ctrl-C would
        then train the next epoch with other masks than the uninterrupted run.
        """
        seeds = [v for v in self.model.variables if v.name == "seed_generator_state"]
        saved = [v.numpy() for v in seeds]
        self.eval_metrics.reset()
        self.objective.evaluate(self.eval_step, split)
        for var, value in zip(seeds, saved):
            var.assign(value)
        return self.eval_metrics.result()

    def checkpoint(self, progress):
        """Everything that must survive a kill: all variables by name, and the progress record."""
        model, optimizer = checkpoint_names(self.model, self.optimizer)
        return tf.train.Checkpoint(
            model=model,  # .variables includes dropout seeds
            optimizer=optimizer,
            metrics=self.train_metrics.sums,
            step=self.step,
            states=self.objective.state_variables(),
            progress=progress,
        )


def checkpoint_names(model, optimizer):
    """The model's and the optimizer's variables keyed by name, so a restore matches them by name.

    Keras numbers repeated names per process (``lstm_1``, ``seed_generator_5``,
    ``adam_1``), so the numbers are replaced by each name's order of appearance
    in this model; an optimizer slot is named after the model variable it
    belongs to.  A checkpoint of another model then fails to match instead of
    loading into the wrong variables.
    """
    stable, counts = {}, {}

    def rename(part):
        if part not in stable:
            base = re.sub(r"_\d+$", "", part)
            n = counts[base] = counts.get(base, -1) + 1
            stable[part] = f"{base}_{n}" if n else base
        return stable[part]

    names = {v.path: "/".join(rename(part) for part in v.path.split("/")) for v in model.variables}
    flat = sorted(((v.path.replace("/", "_") + "_", names[v.path]) for v in model.trainable_variables),
                  key=lambda pair: -len(pair[0]))
    slots = {}
    for v in optimizer.variables:
        local = v.path.split("/", 1)[-1]  # "iteration", "learning_rate", "<variable>_momentum"
        owner = next(((prefix, name) for prefix, name in flat if local.startswith(prefix)), None)
        slots[f"{owner[1]}/{local[len(owner[0]):]}" if owner else local] = v.value
    model_vars = {names[v.path]: v.value for v in model.variables}
    if len(model_vars) != len(model.variables) or len(slots) != len(optimizer.variables):
        raise RuntimeError("two variables share a checkpoint name")
    return model_vars, slots


def fresh_progress(cfg):
    """The progress record; ``first_step`` is the step counter's value when the epoch began."""
    return {"epoch": 0, "best": math.inf, "wait": 0, "history": {}, "done": False,
            "first_step": 0, "learning_rate": cfg.learning_rate}


def absolute(path):
    return os.path.abspath(os.path.expanduser(path)) if path else path


def corpus_files(cfg):
    """Every file the run reads: its fingerprint tells whether the corpus changed before a resume."""
    return find_files(cfg.corpus) + [f for glob in (cfg.valid_corpus, cfg.test_corpus) if glob
                                     for f in find_files(glob)]


def fingerprint(files):
    """Size, mtime and a hash of both ends of each file: cheap whatever the corpus's size."""
    prints = {}
    for name in files:
        size = os.path.getsize(name)
        digest = hashlib.sha256()
        with open(name, "rb") as f:
            digest.update(f.read(SAMPLE_BYTES))
            f.seek(max(size - SAMPLE_BYTES, 0))
            digest.update(f.read(SAMPLE_BYTES))
        prints[absolute(name)] = {"size": size, "mtime_ns": os.stat(name).st_mtime_ns,
                                  "sha256": digest.hexdigest()}
    return prints


def corpus_change(before, now):
    """A few words on how the corpus differs from the fingerprint taken when the run started, or ''."""
    changes = [f"{name} is new" for name in now if name not in before]
    changes += [f"{name} is gone" for name in before if name not in now]
    changes += [f"{name} was modified" for name in now if name in before and now[name] != before[name]]
    if len(changes) > 1:
        return f"{changes[0]}, and {len(changes) - 1} more change(s)"
    return "".join(changes)


def prepare_run(cfg, resume, fresh, log, given=(), force=False):
    """The settings and vocabulary to train with: the saved ones when resuming, else a clean state."""
    state = Path(cfg.model_dir) / STATE
    saved = state / "run.json"
    if resume and fresh:
        raise UsageError("--resume continues the run in --model-dir and --fresh discards it: give one")
    if force and not resume:
        raise UsageError("--force only acts with --resume (to resume on a changed corpus)")
    if resume:
        if not saved.is_file():
            raise UsageError(f"nothing to resume in {cfg.model_dir} (no {saved}); "
                             "train without --resume to start a run")
        return resumed_run(cfg, read_json(saved, "saved run settings"), given, force, log)
    if saved.is_file() and not fresh and not read_json(saved, "saved run settings").get("finished"):
        raise UsageError(f"{cfg.model_dir} holds an unfinished run: add --resume to continue it, "
                         "or --fresh to discard it")
    files = corpus_files(cfg)  # a missing corpus is the first thing to report, before the vocabulary
    vocab = Vocabulary.load(cfg.vocab)
    shutil.rmtree(state, ignore_errors=True)
    state.mkdir(parents=True)
    # The model folder is not recorded: a resumed run trains wherever the folder now is.
    record = {k: absolute(v) if k in PATHS else v for k, v in dataclasses.asdict(cfg).items()
              if k != "model_dir"}
    write_json(saved, dict(record, vocab_sha256=vocab.meta["sha256"], corpus_files=fingerprint(files)))
    return cfg, vocab


def resumed_run(cfg, stored, given, force, log):
    """The run's own settings; a flag typed now may only repeat them (``--epochs`` may change them)."""
    resumed = TrainConfig.from_dict(dict(stored, model_dir=cfg.model_dir))
    for name in sorted(set(given) - {"model_dir"}):
        typed, kept = getattr(cfg, name), getattr(resumed, name)
        typed = absolute(typed) if name in PATHS else typed
        if typed == kept:
            continue
        if name != "epochs":
            raise UsageError(f"{flag(name)} {typed} differs from the run in {cfg.model_dir} "
                             f"({flag(name)} {kept}): "
                             "--resume keeps the settings a run started with; --fresh starts again")
        log(f"--epochs {typed}: the run started with --epochs {kept}; it now trains to {typed}")
        resumed.epochs = typed
    resumed.validate()
    vocab = Vocabulary.load(resumed.vocab)
    if vocab.meta["sha256"] != stored.get("vocab_sha256"):
        raise UsageError(f"the run in {cfg.model_dir} was trained with another vocabulary "
                         f"than {resumed.vocab}; train without --resume to start again")
    now = fingerprint(corpus_files(resumed))
    change = corpus_change(stored.get("corpus_files", {}), now)
    if change and not force:
        raise UsageError(f"the corpus changed since the run in {cfg.model_dir} started ({change}); "
                         "add --force to resume on it anyway, or --fresh to start again")
    if change:
        log(f"--force: resuming on a corpus that changed since the run started ({change})")
        write_json(Path(cfg.model_dir) / STATE / "run.json", dict(stored, corpus_files=now))
    return resumed, vocab


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
    index = worker_index() if cfg.strategy == "multi-worker" else 0
    if index:
        log(f"worker {index}: the chief writes {cfg.model_dir}; this worker keeps its state in "
            f"{worker_folder(cfg.model_dir, index)}")
        cfg = dataclasses.replace(cfg, model_dir=str(worker_folder(cfg.model_dir, index)))
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
    objective = (StreamObjective if cfg.objective == "stream" else WindowObjective)(cfg, vocab, files)
    log(f"{len(files)} file(s), vocabulary {len(vocab)}, {objective.describe}")

    keras.utils.set_random_seed(cfg.seed)
    trainer = Trainer(objective, len(vocab), cfg, strategy)
    model = trainer.model
    progress_var = tf.Variable(json.dumps(fresh_progress(cfg)), trainable=False)
    manager = tf.train.CheckpointManager(trainer.checkpoint(progress_var), str(state), max_to_keep=2)
    restore(manager, log)
    # p is the progress as last committed: what Ctrl-C saves, whatever instant it lands at.
    p = json.loads(progress_var.numpy().decode())
    trainer.optimizer.learning_rate.assign(p["learning_rate"])
    if p["epoch"] or int(trainer.step.numpy()):
        log(f"resuming at epoch {p['epoch'] + 1}, step {int(trainer.step.numpy()) - p['first_step']}")

    def save(progress):
        """Commit ``progress`` with the variables; the learning rate is part of the progress."""
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
        with atomic_path(model_dir / "curves.png") as tmp:
            tmp.write_bytes(plot.curves_png(after["history"]))
        save(after)
        return after

    best_weights = state / "best.weights.h5"
    writers = {split: tf.summary.create_file_writer(str(model_dir / "logs" / split))
               for split in ("train", "validation")}
    n_train = objective.n_train
    pace = Pace(fixed=16 if cfg.strategy == "multi-worker" else None)  # every worker the same counts
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
            logs["val_perplexity"] = math.exp(min(logs["val_loss"], 700))
            logs["learning_rate"] = p["learning_rate"]
            # Keras shows every value with four decimals; the speed reads better rounded, on its own line.
            speed = ("seconds", "tokens_per_second")
            bar.update(n_train, [(k, v) for k, v in logs.items() if k not in speed], finalize=True)
            if verbose:
                print(f"training: {seconds:.1f} s, {logs['tokens_per_second']:,.0f} tokens/s")
            p = end_epoch(epoch, logs)
            if on_epoch:
                on_epoch(logs)
    except KeyboardInterrupt:
        save(p)
        log(f"\ninterrupted: state saved in {state}; `train --resume` continues")
        if best_weights.exists():
            finish(trainer, cfg, vocab, best_weights, p, log, complete=False, chief=chief)
        raise
    return finish(trainer, cfg, vocab, best_weights, p, log, chief=chief)


def restore(manager, log):
    """Restore the newest checkpoint that reads back whole, else the one before it (a line says so).

    A kill while TensorFlow wrote a checkpoint, or a full disk, can leave the
    newest one truncated; the manager keeps two for that.  One that does not
    match this model's variables by name (another model's) fails the same way.
    """
    paths = manager.checkpoints[::-1]  # newest first
    for i, path in enumerate(paths):
        problem = read_checkpoint(manager.checkpoint, path)
        if not problem:
            return
        if i + 1 < len(paths):
            log(f"the checkpoint {path} cannot be read ({problem}); resuming from {paths[i + 1]}")
    if paths:
        raise UsageError(f"no checkpoint in {manager.directory} can be read ({problem}); "
                         "train with --fresh to start again")


def read_checkpoint(checkpoint, path):
    """Restore ``checkpoint`` from ``path``; return what is wrong with the file, or ''."""
    try:
        status = checkpoint.restore(path)
    except Exception as e:  # a damaged file fails in many ways: DataLossError, IndexError, ...
        return " ".join(str(getattr(e, "message", e)).split())[:200]
    try:
        status.assert_existing_objects_matched()
    except AssertionError:
        status.expect_partial()  # else TensorFlow logs every unmatched value at exit
        return "its variables are not this model's"
    return ""


class Pace:
    """How many steps each call of the training loop runs: about ``seconds`` of work.

    Enough steps that the cost of a call is spread thin, few enough that the
    progress bar moves twice a second and Ctrl-C is answered within half a
    second; calls end where a periodic save is due.

    ``fixed``: always that many (still ending at saves and the epoch's end),
    whatever the timing.  Workers training together need it: the all-reduce
    in each step pairs the workers' steps by their iteration within a call,
    so two workers whose calls run different counts (each timing its own
    steps) wait for each other for ever.
    """

    def __init__(self, seconds=0.5, most=256, fixed=None):
        self.seconds, self.most, self.fixed = seconds, most, fixed
        self.per_step = None  # unknown until a call has been timed; the first one also compiles

    def steps(self, left, before_save):
        if self.fixed:
            wanted = self.fixed
        else:
            wanted = 1 if self.per_step is None else int(self.seconds / max(self.per_step, 1e-6))
        return max(1, min(wanted, self.most, left, before_save))

    def took(self, count, seconds):
        self.per_step = seconds / count


def strategy_locals(strategy, value):
    """The per-replica parts of a (possibly distributed) value on this worker."""
    return strategy.experimental_local_results(value)


def record_epoch(writers, epoch, logs):
    """TensorBoard scalars: loss, accuracy, top-5, perplexity and the learning rate."""
    with writers["train"].as_default():
        for key in ("loss", "accuracy", "top5", "learning_rate"):
            tf.summary.scalar(key, logs[key], step=epoch + 1)
        tf.summary.scalar("perplexity", math.exp(min(logs["loss"], 700)), step=epoch + 1)
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
        metrics[split]["perplexity"] = math.exp(min(results["loss"], 700))
    config = dict(dataclasses.asdict(cfg), vocab_size=len(vocab), mode=vocab.mode,
                  vocab_sha256=vocab.meta["sha256"])
    if not chief:
        return metrics
    export.export(trainer.model, cfg.vocab, cfg.model_dir, cfg.window, vocab.mode, cfg.top_k,
                  objective=cfg.objective, target_len=cfg.target_len if cfg.arch == "seq2seq" else None,
                  extra_files={
                      "config.json": (json.dumps(config, indent=2, sort_keys=True) + "\n").encode(),
                      "metrics.json": (json.dumps(metrics, indent=2, sort_keys=True) + "\n").encode(),
                  })
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

"""A run's state on disk: the run record, what resuming checks, and reading checkpoints back.

``checkpoints/run.json`` records the settings a run started with, the
vocabulary's hash and a fingerprint of the corpus; ``--resume`` trains with
those and refuses a flag or a corpus that would change the run.  The
``tf.train.Checkpoint`` files beside it hold every variable by a stable name,
so a checkpoint of another model fails to load instead of loading wrongly.
"""
import dataclasses
import hashlib
import json
import math
import os
import re
import shutil
from pathlib import Path

from .atomic import read_json, write_json
from .config import TrainConfig, flag
from .corpus import Vocabulary, find_files
from .errors import UsageError

STATE = "checkpoints"
PATHS = ("corpus", "vocab", "valid_corpus", "test_corpus", "init_embedding")  # settings that name files: kept absolute in run.json
SAMPLE_BYTES = 1 << 16  # the fingerprint hashes this much of each end of a corpus file


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


def restore(manager, log, agree=None):
    """Restore the newest checkpoint that reads back whole, else the one before it (a line says so).

    A kill while TensorFlow wrote a checkpoint, or a full disk, can leave the
    newest one truncated; the manager keeps two for that.  One that does not
    match this model's variables by name (another model's) fails the same way.

    ``agree``: workers training together (:func:`lm_app.distribute.newest_common`)
    restore the newest position that all of them saved: a worker killed while
    the others went on saved fewer checkpoints than they did.
    """
    paths = manager.checkpoints[::-1]  # newest first
    if agree is not None:
        positions = [saved_position(path) for path in paths]
        common = agree([at for at in positions if at is not None])
        paths = [path for path, at in zip(paths, positions) if at == common][:1]  # none: all start afresh
        if paths[:1] != manager.checkpoints[-1:]:
            log(f"resuming from {paths[0]}: where every worker saved its state" if paths
                else "starting afresh: a worker saved no state")
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


def saved_position(path):
    """Where in the run a checkpoint was saved, ``epoch * 2**40 + step``, read without restoring it.

    None if it cannot be read.
    """
    import tensorflow as tf

    try:
        reader = tf.train.load_checkpoint(path)
        epoch = json.loads(reader.get_tensor("progress/.ATTRIBUTES/VARIABLE_VALUE"))["epoch"]
        return epoch * 2**40 + int(reader.get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE"))
    except Exception:  # a damaged file fails in many ways (see read_checkpoint)
        return None

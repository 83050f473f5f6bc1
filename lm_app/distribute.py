"""Training on several devices or processes: the tf.distribute strategy, TF_CONFIG, and the pace of calls.

Only the chief (worker 0) writes the model folder; every other worker keeps
its own state beside it, so a killed cluster resumes like a single process.
"""
import dataclasses
import json
import os
from pathlib import Path

import tensorflow as tf

WORKER_STEPS_PER_CALL = 16  # workers training together: every call runs this many steps on each


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


def as_worker(cfg, log):
    """``(this worker's index, the settings it trains with)``: a worker other than the chief gets its own folder."""
    index = worker_index() if cfg.strategy == "multi-worker" else 0
    if index:
        log(f"worker {index}: the chief writes {cfg.model_dir}; this worker keeps its state in "
            f"{worker_folder(cfg.model_dir, index)}")
        cfg = dataclasses.replace(cfg, model_dir=str(worker_folder(cfg.model_dir, index)))
    return index, cfg


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

    @classmethod
    def for_strategy(cls, strategy):
        """The pace for ``--strategy``: fixed for workers training together, timed otherwise."""
        return cls(fixed=WORKER_STEPS_PER_CALL if strategy == "multi-worker" else None)

    def steps(self, left, before_save):
        if self.fixed:
            wanted = self.fixed
        else:
            wanted = 1 if self.per_step is None else int(self.seconds / max(self.per_step, 1e-6))
        return max(1, min(wanted, self.most, left, before_save))

    def took(self, count, seconds):
        self.per_step = seconds / count

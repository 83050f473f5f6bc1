"""Training on several devices or processes: the tf.distribute strategy, TF_CONFIG, and the pace of calls.

Only the chief (worker 0) writes the model folder; every other worker keeps
its own state beside it, so a killed cluster resumes like a single process.

An objective whose batch rows carry state (``stream``) hands every replica
the whole batch: each trains on its contiguous share of the rows
(:func:`replica_rows`) and gathers every share of the new state
(:func:`all_rows`), so each replica's copy of the state, and each worker's
checkpoint, is the whole state a single process would hold.
"""
import dataclasses
import json
import os
from pathlib import Path

import tensorflow as tf

from .errors import UsageError

WORKER_STEPS_PER_CALL = 16  # workers training together: every call runs this many steps on each


def make_strategy(name):
    """A tf.distribute strategy; create it before any other TensorFlow op (collectives need that)."""
    if name == "mirrored":  # the GPUs, else every logical CPU device (one unless configured otherwise)
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([d.name for d in devices])
    if name == "multi-worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def replicas():
    """``(this replica's index, the replicas training together)``: ``(0, 1)`` outside a replicated step."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return 0, 1
    return context.replica_id_in_sync_group, context.num_replicas_in_sync


def replica_rows(tensor):
    """This replica's contiguous share of ``tensor``'s rows: replica ``i`` of ``n`` gets rows ``[i B/n, (i+1) B/n)``."""
    index, count = replicas()
    if count == 1:
        return tensor
    share = tensor.shape[0] // count  # the rows split evenly: StreamObjective.build checks it
    return tensor[index * share:(index + 1) * share]


def all_rows(tensor):
    """Every replica's :func:`replica_rows` share of a tensor, in order: the whole batch's rows."""
    if replicas()[1] == 1:
        return tensor
    return tf.distribute.get_replica_context().all_gather(tensor, axis=0)


def check_rows(rows, what="--batch-size"):
    """Refuse rows that do not split evenly over the replicas training together."""
    count = tf.distribute.get_strategy().num_replicas_in_sync
    if rows % count:
        raise UsageError(f"{what} {rows} does not split evenly over {count} replicas: "
                         f"give a multiple of {count}, each replica carries its own rows")


def resuming(name, strategy):
    """``(checkpoints to keep, how restore agrees on one)`` for ``--strategy name``.

    Workers save on their own, so one killed may lag the others by the saves
    they make with no step in between (at a save, the epoch's end, a Ctrl-C):
    each keeps four, and they resume from the newest position all of them hold.
    """
    if name != "multi-worker":
        return 2, None
    return 4, lambda positions: newest_common(strategy, positions, 4)


def newest_common(strategy, positions, slots):
    """The largest of this worker's ``positions`` (at most ``slots``) that every worker holds, or None."""
    mine = tf.constant(sorted(positions)[-slots:] + [-1] * (slots - len(positions[-slots:])), tf.int64)

    def gather():
        return tf.distribute.get_replica_context().all_gather(mine[None], axis=0)

    rows = strategy.experimental_local_results(tf.function(lambda: strategy.run(gather))())[0].numpy()
    shared = set(rows[0]).intersection(*map(set, rows[1:])) - {-1}
    return int(max(shared)) if shared else None


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

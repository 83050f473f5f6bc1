"""The model, its optimizer and the compiled steps that train and score it, whatever the objective.

Every quantity a step changes (weights, optimizer slots, running metrics, the
step counter, the objective's carried state) is a variable, so one
``tf.train.Checkpoint`` of them resumes a run at any step.
"""
import keras
import tensorflow as tf

from . import losses
from .checkpoint import checkpoint_names
from .distribute import replica_rows, replicas


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


def summed_over_replicas(grads):
    """The whole batch's gradient: every replica's, summed, dense.

    Gathering the embedding's sparse gradient (a row per token) instead failed
    in the compiled loop, whose gathers then change shape (an epoch's last
    chunk is shorter): the replicas' collectives did not pair up.
    """
    dense = [g for g in grads if g is not None]
    summed = iter(tf.distribute.get_replica_context().all_reduce("SUM", [tf.convert_to_tensor(g) for g in dense]))
    return [None if g is None else next(summed) for g in grads]


def sums_nothing(optimizer):
    """Keep Keras from summing the replicas' gradients in ``apply``: the step has summed them once already.

    The sum must come before clipping, which needs the whole batch's norm;
    a second sum of the same gradients would cost a second all-reduce.
    """
    if not callable(getattr(optimizer, "_all_reduce_sum_gradients", None)):  # Keras 3's TensorFlow optimizer
        raise RuntimeError("this Keras optimizer sums the replicas' gradients where lm_app does not expect it")
    optimizer._all_reduce_sum_gradients = lambda grads_and_vars: grads_and_vars


def any_batch_size(tensor):
    """``tensor``'s spec with the batch dimension left open."""
    return tf.TensorSpec([None, *tensor.shape[1:]], tensor.dtype)


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
            if self.strategy.num_replicas_in_sync > 1:
                sums_nothing(self.optimizer)
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
        """The batches each replica reads: whole ones where the objective's rows carry state."""
        if self.strategy is tf.distribute.get_strategy() or self.objective.rows_carry_state:
            return batches
        return self.strategy.experimental_distribute_dataset(batches)

    def _distributed_train_step(self, x, y):
        return self._replicated_train_step(x, y)[0]

    def _replicated_train_step(self, x, y):
        """``(the loss summed over replicas, each replica's count of predicted tokens)``."""
        loss, tokens = self.strategy.run(self._replica_train_step, args=(x, y))
        self.step.assign_add(1)
        return self.strategy.reduce("SUM", loss, axis=None), tokens

    def _replica_train_step(self, x, y):
        if self.objective.rows_carry_state:  # every replica reads the whole batch: its rows are its own
            x, y = replica_rows(x), replica_rows(y)
        # Labels that are not <pad> (id 0): every label of a language model, a dialogue's real response tokens.
        return self._train_step(x, y), tf.math.count_nonzero(y, dtype=tf.int64)

    def _train_steps(self, iterator, count):
        """``count`` training steps from ``iterator`` in one call; returns the tokens they predicted.

        Python's share of a call (dispatch, the next batch) is paid on every
        step by a Python loop; a loop in the graph pays it once per call, as
        Keras' ``steps_per_execution`` does.
        """
        def step(i, tokens):
            x, y = iterator.get_next()
            local = self.strategy.experimental_local_results(self._replicated_train_step(x, y)[1])
            return i + 1, tokens + tf.add_n(list(local))  # this worker's replicas' tokens

        return tf.while_loop(lambda i, _: i < count, step, (tf.constant(0), tf.constant(0, tf.int64)))[1]

    def _train_step(self, x, y):
        with tf.GradientTape() as tape:
            token_losses, ranks = self.objective.token_losses(x, y, training=True)
            loss = tf.nn.compute_average_loss(token_losses)  # the mean over all replicas' tokens
        variables = self.model.trainable_variables
        grads = tape.gradient(loss, variables)
        if replicas()[1] > 1:  # summed once, here (see sums_nothing): clipping needs the whole batch's norm
            grads = summed_over_replicas(grads)
        if self.clip_norm:
            grads = clip_by_global_norm(grads, self.clip_norm)
        self.optimizer.apply(grads, variables)
        self.train_metrics.update(token_losses, ranks)
        return loss

    def _eval_step(self, x, y):
        self.eval_metrics.update(*self.objective.token_losses(x, y, training=False))

    def _eval_batch(self, x, y):
        """One held-out batch, the step traced for any batch size before its first call.

        A part's last batch is shorter: traced for the first batch's size, the
        step then traced the whole model a second time on every run.
        """
        if not self.eval_step.experimental_get_tracing_count():
            self.eval_step.get_concrete_function(*tf.nest.map_structure(any_batch_size, (x, y)))
        self.eval_step(x, y)

    def evaluate(self, split="valid"):
        """Loss, accuracy and top-5 on a held-out part (``"valid"`` or ``"test"``), the dropout seeds kept.

        Keras' recurrent cells draw a dropout mask even when not training, so
        evaluating advanced the seeds: an epoch end redone after Ctrl-C would
        then train the next epoch with other masks than the uninterrupted run.
        """
        seeds = [v for v in self.model.variables if v.name == "seed_generator_state"]
        saved = [v.numpy() for v in seeds]
        self.eval_metrics.reset()
        self.objective.evaluate(self._eval_batch, split)
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

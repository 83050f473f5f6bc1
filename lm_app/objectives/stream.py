"""The standard protocol of PyTorch's ``word_language_model``: the token stream read in contiguous rows.

The stream is cut into ``--batch-size`` contiguous rows, read ``--bptt``
tokens at a time, every position predicting its next token, the recurrent
state carried from chunk to chunk and reset at each epoch.

On several replicas (``--strategy mirrored`` or ``multi-worker``) each one
trains on its contiguous share of the rows and carries their state; the
state variables hold every row, gathered from the replicas after each chunk,
so a checkpoint is the one a single process writes.  Held-out parts are
scored whole by each worker, as one process scores them.
"""
import tensorflow as tf

from .. import data
from ..distribute import all_rows, check_rows, replica_rows
from ..errors import UsageError
from ..models import stream_model
from .base import SPLIT_NAMES, Objective, held_out_parts, held_out_sources


class StreamObjective(Objective):
    """Contiguous rows read in chunks of ``cfg.bptt`` tokens, the state carried between chunks."""

    rows_carry_state = True

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
                                     for split, rows in self.held_out.items())
                         + self.read_embedding(cfg, vocab))

    def build(self, vocab_size):
        cfg = self.cfg
        check_rows(cfg.batch_size)
        self.model = self.start_embedding(stream_model(cfg, vocab_size))
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
        # x and y are this replica's rows (Trainer), the state is kept for all rows.
        scores, new = self.model.token_losses(tf.transpose(x), tf.transpose(y),
                                              self._nest([replica_rows(s.value()) for s in self.states]),
                                              training)
        for var, value in zip(self.states, [s for layer in new for s in layer]):
            var.assign(all_rows(tf.stop_gradient(value)))  # each replica's copy: every replica's rows
        return scores

    def evaluate(self, step, split):
        saved = [s.numpy() for s in self.states]
        self.start_epoch()
        for x, y in data.stream_chunks(self.held_out[split], self.cfg.bptt):
            step(x, y)
        for var, value in zip(self.states, saved):
            var.assign(value)

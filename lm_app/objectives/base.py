"""The interface every training objective gives train.py's loop, and what the objectives share."""
import abc

from .. import pretrained
from ..corpus import find_files

SPLIT_NAMES = {"valid": "validation", "test": "test"}


class Objective(abc.ABC):
    """One way to turn the corpus into training steps: all that train.py's loop knows of a model family.

    ``__init__(cfg, vocab, files)`` reads the corpus and sets:

    * ``n_train``: the batches of one epoch (the progress bar and resuming count them);
    * ``held_out``: ``{"valid": ..., "test": ...}``, the held-out parts it can score
      (validation always; test unless its share is 0);
    * ``describe``: one line for the log about the data it made.

    Resuming after a kill relies on two promises: ``batches(epoch, skip)`` is a
    pure function of the settings and ``epoch`` (so skipping reaches the same
    batch), and every value that changes between steps other than the model's
    and the optimizer's variables is in ``state_variables()``.
    """

    n_train: int
    held_out: dict
    describe: str
    # True: a batch's rows are lasting streams with state (stream), so replicas training together
    # each take a contiguous share of every batch's rows instead of a share of the batches.
    rows_carry_state = False

    @abc.abstractmethod
    def build(self, vocab_size):
        """Make, keep as ``self.model`` and return the Keras model (inside the strategy's scope)."""

    @abc.abstractmethod
    def batches(self, epoch, skip):
        """The ``(x, y)`` batches of ``epoch`` from batch ``skip`` on, as a ``tf.data.Dataset``."""

    @abc.abstractmethod
    def token_losses(self, x, y, training):
        """``(loss of each predicted token, rank of its label)`` for one batch; called in the compiled steps."""

    @abc.abstractmethod
    def evaluate(self, step, split):
        """Call ``step(x, y)`` on every batch of the held-out part ``split``, leaving the training state as it was."""

    def state_variables(self):
        """Variables besides the model's that a checkpoint must keep (e.g. a recurrent state carried across batches)."""
        return []

    def extra_metrics(self, split):
        """Figures beside loss, accuracy and top-5 for the final scores of ``split`` (e.g. VHRED's KL)."""
        return {}

    def start_epoch(self):
        """Reset what an epoch starts from (e.g. the carried state); called before its first batch."""

    def read_embedding(self, cfg, vocab):
        """Read ``--init-embedding``'s vectors now, so a bad file stops the run before it trains.

        Returns what the log's data line adds: how many vocabulary entries they start.
        """
        self.initial = None
        if not cfg.init_embedding:
            return ""
        self.initial = pretrained.read(cfg.init_embedding, vocab.tokens, cfg.embedding)
        frozen = ", frozen" if cfg.freeze_embedding else ""
        return (f"; embedding: {len(self.initial[0]):,} of the vocabulary's {len(vocab):,} entries "
                f"start from {cfg.init_embedding}{frozen}")

    def start_embedding(self, model):
        """The new ``model`` with the vectors read by :meth:`read_embedding` in its embedding."""
        if self.initial is not None:
            pretrained.apply(model, *self.initial, freeze=self.cfg.freeze_embedding)
        return model


def held_out_sources(cfg):
    """``(part, its own files or None)`` for each held-out part: validation, and test unless its share is 0."""
    sources = [("valid", cfg.valid_corpus), ("test", cfg.test_corpus)]
    return [(split, find_files(glob) if glob else None) for split, glob in sources
            if glob or split == "valid" or cfg.test_fraction]


def held_out_parts(held_out):
    """'a validation part', or 'validation and test parts': for messages about the parts a run has."""
    names = [SPLIT_NAMES[split] for split in held_out]
    return f"a {names[0]} part" if len(names) == 1 else f"{' and '.join(names)} parts"

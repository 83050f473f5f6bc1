"""Dialogue: every turn after the first ``--context-turns`` of a dialogue is a response to the turns before it.

The loop sees the usual ``(x, y)`` batches: ``x`` the context turns
``[batch, turns, words]``, ``y`` the response ``[batch, words]``; the loss
is per response token (``<pad>`` left out), so the loop's mean is the
per-token response NLL, or for VHRED the annealed negative ELBO per token.
Held-out parts are whole dialogues (see :func:`lm_app.dialogue.data.split_dialogues`).
"""
import numpy as np

from ..dialogue.data import Examples, end_of_turn, read_dialogues, split_dialogues
from ..dialogue.models import dialogue_model
from ..errors import UsageError
from .base import SPLIT_NAMES, Objective, held_out_parts, held_out_sources


class DialogueObjective(Objective):
    """Contexts of ``cfg.context_turns`` turns and their responses, shuffled per epoch."""

    def __init__(self, cfg, vocab, files):
        self.cfg = cfg
        dialogues = read_dialogues(files, vocab)
        shares = cfg.held_out_shares()

        def examples(dialogues):
            return Examples(dialogues, cfg.context_turns, cfg.max_turn_words, end_of_turn(len(vocab)))

        self.train_examples = examples(split_dialogues(dialogues, "train", *shares))
        self.held_out = {split: examples(read_dialogues(own, vocab) if own
                                         else split_dialogues(dialogues, split, *shares))
                         for split, own in held_out_sources(cfg)}
        counts = {split: len(ex) for split, ex in self.held_out.items()}
        if not len(self.train_examples) or 0 in counts.values():
            raise UsageError(
                f"the corpus {cfg.corpus!r} has too few dialogues of more than {cfg.context_turns} turns "
                f"for training plus {held_out_parts(self.held_out)} (whole dialogues are held out)")
        self.n_train = -(-len(self.train_examples) // cfg.batch_size)
        self.describe = (f"{len(dialogues)} dialogues; {len(self.train_examples)} training, "
                         + ", ".join(f"{n} {SPLIT_NAMES[split]}" for split, n in counts.items())
                         + f" responses to {cfg.context_turns} turns" + self.read_embedding(cfg, vocab))

    def build(self, vocab_size):
        self.model = self.start_embedding(dialogue_model(self.cfg, vocab_size))
        return self.model

    def batches(self, epoch, skip):
        # The order of an epoch depends only on (seed, epoch): resuming skips what was done.
        return self.train_examples.batches(self.cfg.batch_size, shuffle=True,
                                           seed=self.cfg.seed * 100_003 + epoch).skip(skip)

    def token_losses(self, x, y, training):
        return self.model.token_losses(x, y, training)[:2]

    def evaluate(self, step, split):
        for x, y in self.held_out[split].batches(self.cfg.batch_size):
            step(x, y)

    def kl_per_response(self, split="valid"):
        """VHRED's mean KL(posterior || prior) per response on a held-out part, in nats (None for other archs).

        Below a few tenths of a nat, the decoder has learned to ignore z (posterior collapse).
        """
        if not self.model.latent:
            return None
        kls = [self.model.token_losses(x, y)[2].numpy()
               for x, y in self.held_out[split].batches(self.cfg.batch_size)]
        return float(np.mean(np.concatenate(kls)))

    def extra_metrics(self, split):
        kl = self.kl_per_response(split)
        return {} if kl is None else {"kl_per_response": kl}

    def export(self, model_dir, vocab_file, mode, extra_files):
        """The dialogue SavedModel (see :mod:`lm_app.dialogue.export`)."""
        from ..dialogue.export import export

        return export(self.model, vocab_file, model_dir, mode, self.cfg, extra_files)

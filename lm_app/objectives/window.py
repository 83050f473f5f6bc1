"""The notes' objective: shuffled windows of ``--window`` words, each predicting the word after it."""
from .. import data, losses
from ..errors import UsageError
from ..models import adaptive_parts, window_model
from .base import SPLIT_NAMES, Objective, held_out_parts, held_out_sources


class WindowObjective(Objective):
    """Shuffled windows of ``cfg.window`` words; each predicts the word after it (seq2seq: the next ``target_len``)."""

    def __init__(self, cfg, vocab, files):
        self.cfg = cfg
        targets = cfg.target_len if cfg.arch == "seq2seq" else 1

        shape = dict(window=cfg.window, targets=targets)
        corpus = data.CorpusWindows(files, vocab, **shape, keep=True,
                                    **dict(zip(("valid_fraction", "test_fraction"), cfg.held_out_shares())))
        self.train_windows = corpus.dataset("train")
        # Validation picks the weights and drives early stopping and the learning rate; test only scores.
        sources = held_out_sources(cfg)
        own = {split: data.CorpusWindows(own_files, vocab, **shape, keep=True)
               for split, own_files in sources if own_files}
        self.held_out = {split: data.batched(own[split].dataset("all") if split in own else corpus.dataset(split),
                                             cfg.batch_size)
                         for split, _ in sources}
        # One pass over the corpus counts every part's windows (a pass per part would read it thrice).
        shared = corpus.counts()
        windows_in = {split: own[split].counts()["all"] if split in own else shared[split]
                      for split, _ in sources}
        self.n_train = -(-shared["train"] // cfg.batch_size)
        counts = {split: -(-n // cfg.batch_size) for split, n in windows_in.items()}
        if self.n_train == 0 or 0 in counts.values():
            raise UsageError(
                f"the corpus {cfg.corpus!r} is too small for windows of {cfg.window} words "
                f"plus {held_out_parts(self.held_out)} (windows never cross files)")
        self.describe = (f"{self.n_train} training, "
                         + ", ".join(f"{n} {SPLIT_NAMES[split]}" for split, n in counts.items())
                         + f" batches of {cfg.batch_size} windows" + self.read_embedding(cfg, vocab))

    def build(self, vocab_size):
        self.model = self.start_embedding(window_model(self.cfg, vocab_size))
        # --softmax adaptive trains from the features: the full logits are never built.
        self.adaptive = adaptive_parts(self.model) if self.cfg.softmax == "adaptive" else None
        return self.model

    def batches(self, epoch, skip):
        # The order of an epoch depends only on (seed, epoch): resuming skips what was done.
        return data.batched(self.train_windows, self.cfg.batch_size, shuffle=True,
                            seed=self.cfg.seed * 100_003 + epoch).skip(skip)

    def token_losses(self, x, y, training):
        if self.adaptive:
            features, head = self.adaptive
            return head.token_losses(features(x, training=training), y, training)
        if self.cfg.arch == "seq2seq":  # teacher forcing: the decoder reads the true words
            logits = self.model((x, self.model.decoder_inputs(x, y)), training=training)
        else:
            logits = self.model(x, training=training)
        return losses.token_losses(y, logits, training)

    def evaluate(self, step, split):
        for x, y in self.held_out[split]:
            step(x, y)

"""The sampling formulas of word2vec, written once: the native kernel and the portable path both read them.

Each is gensim's (``gensim/models/word2vec.py`` and ``word2vec_inner.pyx``),
itself the original ``word2vec.c``'s, so vectors trained here compare with
gensim's figure for figure:

* frequent words are dropped with the keep-probability
  ``(sqrt(f / t) + 1) * t / f`` (``t = sample * total``, capped at 1), stored
  as gensim's ``sample_int``: a word is kept when a 32-bit draw is at most it;
* noise words are drawn with probability ``count ** 0.75`` through the
  cumulative table gensim bisects (``cum_table``, total ``2**31 - 1``);
* each centre word draws ``b`` uniformly in ``[0, window)`` and looks ``window - b``
  words each side (the "dynamic window": near words count more);
* the learning rate falls linearly from ``alpha`` to ``min_alpha`` with the
  share of all epochs' words processed.

Random draws use word2vec.c's 48-bit LCG; each sentence starts its own stream
from ``(seed, epoch, sentence)``, so a batch's result does not depend on which
thread ran which sentence, and a resumed run draws the same numbers again.
"""
import numpy as np

MAX_WORDS_IN_BATCH = 10_000  # gensim's sentence length limit: longer ones are cut
CUM_TABLE_DOMAIN = 2**31 - 1
NS_EXPONENT = 0.75
LCG_MULTIPLIER, LCG_INCREMENT, LCG_MASK = 25214903917, 11, (1 << 48) - 1
MASK64 = (1 << 64) - 1


def keep_probability(counts, sample):
    """Each word's chance to stay in a sentence (1 for all when ``sample`` is 0)."""
    counts = np.asarray(counts, np.float64)
    if not sample:
        return np.ones_like(counts)
    threshold = sample * counts.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        keep = (np.sqrt(counts / threshold) + 1) * threshold / counts
    return np.where(counts > 0, np.minimum(keep, 1.0), 1.0)


def sample_int(counts, sample):
    """gensim's integer form of :func:`keep_probability`: keep a word when ``draw32 <= sample_int``."""
    return np.round(keep_probability(counts, sample) * 2**32).astype(np.int64)


def cum_table(counts):
    """The cumulative unigram^0.75 table, ending at ``2**31 - 1``; a word of count 0 is never drawn."""
    weights = np.asarray(counts, np.float64) ** NS_EXPONENT
    return np.round(np.cumsum(weights) / weights.sum() * CUM_TABLE_DOMAIN).astype(np.int64)


def noise_word(table, draw):
    """The noise word for a 48-bit LCG state ``draw``, as gensim bisects: ``(draw >> 16) % table[-1]``."""
    return int(np.searchsorted(table, (draw >> 16) % int(table[-1]), side="right"))


def learning_rate(alpha, min_alpha, done, total):
    """The rate after ``done`` of ``total`` words (all epochs): linear from ``alpha`` to ``min_alpha``."""
    progress = min(max(done / max(total, 1), 0.0), 1.0)
    return alpha - (alpha - min_alpha) * progress


def sentence_seed(seed, epoch, sentence):
    """The LCG's first state for one sentence: splitmix64 of the three, as the kernel computes it."""
    z = (seed * 0x9E3779B97F4A7C15 + epoch * 0xD1B54A32D192ED03 + sentence * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return (z ^ (z >> 31)) & LCG_MASK


class Lcg:
    """word2vec.c's generator: ``next = next * 25214903917 + 11`` (48 bits); a draw is the state before."""

    def __init__(self, state):
        self.state = state

    def draw(self):
        value = self.state
        self.state = (self.state * LCG_MULTIPLIER + LCG_INCREMENT) & LCG_MASK
        return value

    def draw32(self):
        return self.draw() >> 16


def sentences(file_ends, limit=MAX_WORDS_IN_BATCH):
    """Sentence bounds ``[0, e1, ...]`` over an id stream: cut at each file end and every ``limit`` words."""
    bounds, start = [0], 0
    for end in file_ends:
        bounds.extend(range(start + limit, end, limit))
        if end > start:
            bounds.append(end)
        start = end
    return np.asarray(bounds, np.int64)

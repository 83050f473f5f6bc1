"""The embedding scores of a response against the reference (Liu et al. 2016), as VHRED's paper reports them.

Word-overlap scores barely track human judgement of dialogue responses; these
compare meanings through word vectors (``evaluate --embeddings vectors.txt``,
e.g. word2vec's).  For a response ``r`` and the reference ``t``, with ``e_w``
the vector of word ``w``:

* **Average**: the cosine of ``sum(e_w for w in r)`` and ``sum(e_w for w in t)``
  (each sum's direction is its mean's);
* **Extrema**: the cosine of the two vectors that keep, per dimension, the
  value of largest magnitude among the words' vectors;
* **Greedy**: each word of one matched with its most similar word of the other
  (cosine), averaged over its words, then the mean of both directions.

Words without a vector are left out; a pair in which either side keeps no word
is not scored (the report counts the scored pairs).
"""
import numpy as np

from ..word2vec.vectors import read_vectors, unit_vectors

NAMES = ("average", "greedy", "extrema")


def cosine(a, b):
    a, b = unit_vectors(np.stack([a, b]))
    return float(a @ b)


def extrema(rows):
    """Per dimension, the value of largest magnitude (the maximum when it ties with the minimum's)."""
    high, low = rows.max(axis=0), rows.min(axis=0)
    return np.where(high >= -low, high, low)


def greedy(a, b):
    similar = unit_vectors(a) @ unit_vectors(b).T
    return float((similar.max(axis=1).mean() + similar.max(axis=0).mean()) / 2)


def scores(response, reference):
    """``{average, greedy, extrema}`` of two ``[words, dim]`` arrays of word vectors."""
    return {"average": cosine(response.sum(axis=0), reference.sum(axis=0)),
            "greedy": greedy(response, reference),
            "extrema": cosine(extrema(response), extrema(reference))}


class EmbeddingScorer:
    """Mean scores of response/reference pairs given as vocabulary ids, through a vectors file."""

    def __init__(self, path, tokens):
        words, vectors = read_vectors(path)
        index = {w: i for i, w in enumerate(words)}
        self.rows = {i: vectors[index[t]] for i, t in enumerate(tokens) if t in index}
        self.totals, self.pairs, self.skipped = dict.fromkeys(NAMES, 0.0), 0, 0

    def vectors(self, ids):
        return np.array([self.rows[i] for i in ids if i in self.rows])

    def add(self, response_ids, reference_ids):
        response, reference = self.vectors(response_ids), self.vectors(reference_ids)
        if not len(response) or not len(reference):
            self.skipped += 1
            return
        for name, value in scores(response, reference).items():
            self.totals[name] += value
        self.pairs += 1

    def result(self):
        means = {f"embedding_{name}": (total / self.pairs if self.pairs else None)
                 for name, total in self.totals.items()}
        return dict(means, embedding_pairs=self.pairs, embedding_pairs_skipped=self.skipped)

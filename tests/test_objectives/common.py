"""What the objectives' tests share: an objective on a tiny corpus, and comparing batches."""
import numpy as np

from lm_app import corpus
from lm_app.config import TrainConfig
from tests.conftest import cycle_corpus


def make(cls, folder, build=False, **settings):
    """``cls`` on a small cycle corpus in ``folder``, with a tiny model (built if ``build``)."""
    glob = str(cycle_corpus(folder / "c", repeats=20) / "*.txt")
    vocab = corpus.build_vocabulary(glob, min_count=0)
    cfg = TrainConfig(corpus=glob, vocab="unused", model_dir=str(folder / "m"), embedding=4, hidden=4, seed=3,
                      **settings)
    objective = cls(cfg, vocab, corpus.find_files(glob))
    if build:
        objective.build(len(vocab))
    return objective


def assert_same_batches(got, expected):
    got, expected = list(got), list(expected)
    assert len(got) == len(expected) > 0
    for (x, y), (ex, ey) in zip(got, expected):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(ex))
        np.testing.assert_array_equal(np.asarray(y), np.asarray(ey))

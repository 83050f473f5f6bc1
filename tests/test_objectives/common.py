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


def assert_adaptive_softmax_trains(objective, x, y):
    """In a compiled step, the training path's losses are the exact held-out ones, and the weights learn (#17.1)."""
    import tensorflow as tf

    weights = objective.model.trainable_variables

    @tf.function
    def scores(training):
        objective.start_epoch()
        with tf.GradientTape() as tape:
            losses, ranks = objective.token_losses(x, y, training)
            mean = tf.reduce_mean(losses)
        return losses, ranks, tape.gradient(mean, weights) if training else []

    trained, _, grads = scores(True)
    held_out, ranks, _ = scores(False)
    np.testing.assert_allclose(trained.numpy(), held_out.numpy(), rtol=1e-5)
    vocab_size = next(w for w in weights if w.name == "embeddings").shape[0]
    assert 0 <= ranks.numpy().min() and ranks.numpy().max() < vocab_size  # over the whole vocabulary
    grads = {w.name: np.asarray(tf.convert_to_tensor(g)) for w, g in zip(weights, grads, strict=True)}
    assert all(np.isfinite(g).all() for g in grads.values())
    assert np.abs(grads["head_kernel"]).sum() > 0 and np.abs(grads["embeddings"]).sum() > 0

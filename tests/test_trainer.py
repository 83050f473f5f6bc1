"""The Trainer's compiled steps (lm_app/trainer.py), and its gradient clipping by global norm against NumPy.

Clipping (the notes' cure for exploding gradients):

    g <- g * max_norm / max(global_norm, max_norm),   global_norm = sqrt(sum_k ||g_k||^2)

One factor for all tensors, so the update keeps its direction and only its length is capped.
The embedding's sparse gradient counts as the dense gradient it sums to.
"""
import numpy as np
import pytest
import tensorflow as tf

from lm_app import corpus
from lm_app.config import TrainConfig
from lm_app.objectives import StreamObjective, WindowObjective
from lm_app.trainer import Trainer, clip_by_global_norm
from tests.conftest import cycle_corpus


def test_several_steps_in_one_call_equal_one_call_per_step(tmp_path):
    """The training loop runs many steps per call of its graph: they must be exactly the single steps,
    the epoch's short last chunk included, and the call must count the tokens it predicted."""
    glob = str(cycle_corpus(tmp_path / "c", repeats=3) / "*.txt")
    vocab = corpus.build_vocabulary(glob, min_count=0)
    cfg = TrainConfig(corpus=glob, vocab="unused", model_dir=str(tmp_path / "m"), objective="stream",
                      arch="lstm", layers=2, embedding=8, hidden=8, bptt=7, batch_size=4, dropout=0.3,
                      optimizer="sgd", learning_rate=1.0, clip_norm=0.5, seed=5)
    files = corpus.find_files(glob)

    def trainer():
        t = Trainer(StreamObjective(cfg, vocab, files), len(vocab), cfg)
        t.objective.start_epoch()
        return t

    one, many = trainer(), trainer()
    n = one.objective.n_train
    chunks = list(one.objective.batches(0, 0))
    assert len(chunks) == n >= 4 and chunks[-1][1].shape[1] < cfg.bptt  # a short last chunk
    for x, y in chunks:
        one.train_step(x, y)
    batches = iter(many.objective.batches(0, 0))
    counted = [int(many.train_steps(batches, tf.constant(k))) for k in (1, n - 3, 2)]
    assert counted == [4 * cfg.bptt, 4 * cfg.bptt * (n - 3), 4 * cfg.bptt + chunks[-1][1].shape.num_elements()]
    assert int(many.step.numpy()) == int(one.step.numpy()) == n
    state = lambda t: [v.numpy() for v in [*t.model.variables, *t.optimizer.variables,  # noqa: E731
                                           *t.objective.state_variables(), t.train_metrics.sums]]
    for a, b in zip(state(one), state(many), strict=True):
        np.testing.assert_array_equal(a, b)


def test_evaluation_traces_its_step_once_whatever_the_batch_sizes(tmp_path):
    """A held-out part's last batch is shorter: one trace serves both sizes, and the figures are the batches' mean."""
    glob = str(cycle_corpus(tmp_path / "c", repeats=8) / "*.txt")
    vocab = corpus.build_vocabulary(glob, min_count=0)
    cfg = TrainConfig(corpus=glob, vocab="unused", model_dir=str(tmp_path / "m"), embedding=4, hidden=8,
                      batch_size=16, dropout=0.3, seed=3, valid_fraction=0.2, test_fraction=0)
    trainer = Trainer(WindowObjective(cfg, vocab, corpus.find_files(glob)), len(vocab), cfg)
    batches = list(trainer.objective.held_out["valid"])
    assert len({len(y) for _, y in batches}) == 2  # full batches and a shorter last one
    first, again = trainer.evaluate(), trainer.evaluate()
    assert trainer.eval_step.experimental_get_tracing_count() == 1
    token_losses = np.concatenate([trainer.objective.token_losses(x, y, training=False)[0].numpy()
                                   for x, y in batches])
    assert first["loss"] == pytest.approx(token_losses.mean(), rel=1e-5)
    assert first == again


def _gradients(norm, seed=0):
    """A dense matrix, a vector and a sparse embedding gradient whose rows repeat, scaled to ``norm``."""
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(5, 3)).astype("float32")
    grads = [rng.normal(size=(4, 6)).astype("float32"), rng.normal(size=(6,)).astype("float32"),
             tf.IndexedSlices(values, tf.constant([0, 2, 0, 0, 3]), tf.constant([4, 3]))]
    scale = norm / np.sqrt(sum((d ** 2).sum() for d in _dense(grads)))
    grads = [tf.constant(g * scale) for g in grads[:2]] + [
        tf.IndexedSlices(values * scale, grads[2].indices, grads[2].dense_shape)]
    return grads


def _dense(grads):
    """The gradients in float64 NumPy; a sparse one summed per row, as the dense gradient it stands for."""
    out = []
    for g in grads:
        if isinstance(g, tf.IndexedSlices):
            d = np.zeros(g.dense_shape.numpy(), np.float64)
            np.add.at(d, g.indices.numpy(), np.asarray(g.values, np.float64))
            out.append(d)
        else:
            out.append(None if g is None else np.asarray(g, np.float64))
    return out


def _reference(grads, max_norm):
    """NumPy's clipping: every gradient times ``max_norm / max(norm, max_norm)``; None stays None."""
    dense = _dense(grads)
    norm = np.sqrt(sum((d ** 2).sum() for d in dense if d is not None))
    return [None if d is None else d * (max_norm / max(norm, max_norm)) for d in dense]


def _flat(grads):
    return np.concatenate([np.ravel(g) for g in grads]).astype("float64")


def _assert_clipped(got, want, rtol):
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert (g is None) == (w is None)
        if w is not None:
            np.testing.assert_allclose(np.asarray(g, np.float64), w, rtol=rtol, atol=1e-7)


def test_large_gradients_are_scaled_to_the_threshold_by_their_true_norm():
    grads = _gradients(50.0)
    sparse_norm = float(tf.linalg.global_norm(grads))  # squares the repeated rows one by one
    assert abs(sparse_norm - 50.0) > 1  # so a clipping that measured it that way would fail below
    clipped = clip_by_global_norm(grads, 5.0)
    _assert_clipped(clipped, _reference(grads, 5.0), rtol=1e-5)
    assert abs(np.linalg.norm(_flat(clipped)) - 5.0) < 1e-4
    a, b = _flat(_dense(grads)), _flat(clipped)
    assert abs(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)) - 1.0) < 1e-6  # same direction


@pytest.mark.parametrize("norm", [1.0, 4.999])
def test_gradients_below_the_threshold_pass_unchanged(norm):
    grads = _gradients(norm, seed=1)
    _assert_clipped(clip_by_global_norm(grads, 5.0), _dense(grads), rtol=1e-6)


def test_zero_gradients_stay_zero_not_nan():
    grads = [tf.zeros([3, 2]), tf.IndexedSlices(tf.zeros([2, 2]), tf.constant([1, 1]), tf.constant([3, 2]))]
    for g in clip_by_global_norm(grads, 1.0):
        assert np.all(np.asarray(g) == 0)


def test_a_variable_without_gradient_keeps_none_and_does_not_count():
    """``tape.gradient`` gives None for a variable the loss does not reach; the optimizer skips it."""
    grads = _gradients(50.0, seed=2)
    with_none = [grads[0], None, *grads[1:]]
    clipped = clip_by_global_norm(with_none, 5.0)
    _assert_clipped(clipped, _reference(with_none, 5.0), rtol=1e-5)


def _one_training_step(tmp_path, clip_norm):
    """One real step of the Trainer (SGD, lr 1): the weights' move and the gradients it started from.

    The cycle corpus repeats words in every batch, so the embedding's sparse
    gradient has several rows per word; weights drawn large enough that the
    embedding's gradient weighs in the norm.
    """

    files = [str(p) for p in sorted(cycle_corpus(tmp_path / "c", repeats=10).glob("*.txt"))]
    vocab = corpus.build_vocabulary(str(tmp_path / "c" / "*.txt"), min_count=0)
    cfg = TrainConfig(corpus=str(tmp_path / "c" / "*.txt"), vocab="unused", model_dir=str(tmp_path / "m"),
                      objective="stream", arch="lstm", layers=1, embedding=8, hidden=8, bptt=6,
                      batch_size=4, dropout=0.0, optimizer="sgd", learning_rate=1.0, clip_norm=clip_norm)
    trainer = Trainer(StreamObjective(cfg, vocab, files), len(vocab), cfg)
    rng = np.random.default_rng(0)
    for weight in trainer.model.trainable_weights:
        weight.assign(rng.normal(0, 0.5, weight.shape).astype("float32"))
    x, y = next(iter(trainer.objective.batches(0, 0)))
    vars_ = trainer.model.trainable_variables
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(trainer.objective.token_losses(x, y, training=True)[0])
    grads = tape.gradient(loss, vars_)
    trainer.objective.start_epoch()  # the state the step starts from, as the tape's pass did
    before = [v.numpy().copy() for v in vars_]
    trainer.train_step(x, y)
    return [v.numpy() - b for v, b in zip(vars_, before)], grads


def test_the_train_step_clips_by_the_true_norm_of_a_sparse_embedding_gradient(tmp_path):
    """The step moves the weights by exactly lr * clip, along the NumPy-clipped gradient."""
    moved, grads = _one_training_step(tmp_path, clip_norm=0.01)
    assert any(isinstance(g, tf.IndexedSlices) for g in grads)
    true_norm = np.linalg.norm(_flat(_dense(grads)))
    sparse_norm = float(tf.linalg.global_norm(grads))  # what squaring the rows as they come measures
    assert true_norm > 0.01 and true_norm > sparse_norm * 1.002  # rows repeat
    # Scaled by the sparse norm, the step would be 0.01 * true / sparse >= 0.01002 long.
    assert abs(np.linalg.norm(_flat(moved)) - 0.01) < 0.01 * (true_norm / sparse_norm - 1) / 4
    expected = -_flat(_reference(grads, 0.01))
    assert np.linalg.norm(_flat(moved) - expected) < 1e-4 * np.linalg.norm(expected)


def test_clip_norm_0_leaves_the_train_step_unclipped(tmp_path):
    moved, grads = _one_training_step(tmp_path, clip_norm=0)
    expected = -_flat(_dense(grads))
    assert np.linalg.norm(expected) > 0.05  # so a clipping to any small norm would show
    assert np.linalg.norm(_flat(moved) - expected) < 1e-4 * np.linalg.norm(expected)

"""Gradient clipping by global norm (the notes' cure for exploding gradients), on real LSTM gradients.

    g <- g * max_norm / max(global_norm, max_norm),   global_norm = sqrt(sum_k ||g_k||^2)

One factor for all tensors, so the update keeps its direction and only its length is capped.
"""
import keras
import numpy as np
import tensorflow as tf

from lm_app.layers import LSTMCell


def _model_and_grads(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((6, 3))
    hidden = keras.layers.RNN(LSTMCell(8, peephole=True))(inputs)
    model = keras.Model(inputs, keras.layers.Dense(1)(hidden))
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(16, 6, 3)).astype("float32")
    y = rng.normal(size=(16, 1)).astype("float32")
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean((model(x) - y) ** 2)
    grads = tape.gradient(loss, model.trainable_variables)
    assert all(g is not None for g in grads)
    return model, grads


def _scaled_to(grads, norm):
    return [g * (norm / tf.linalg.global_norm(grads)) for g in grads]


def _flat(grads):
    return np.concatenate([np.ravel(g) for g in grads]).astype("float64")


def test_large_gradients_are_scaled_to_the_threshold_keeping_direction():
    _, grads = _model_and_grads()
    big = _scaled_to(grads, 50.0)
    assert abs(float(tf.linalg.global_norm(big)) - 50.0) < 1e-3
    clipped, norm_before = tf.clip_by_global_norm(big, 5.0)
    assert abs(float(norm_before) - 50.0) < 1e-3
    assert float(tf.linalg.global_norm(clipped)) <= 5.0 + 1e-4
    assert float(tf.linalg.global_norm(clipped)) > 5.0 - 1e-3  # scaled, not zeroed
    a, b = _flat(big), _flat(clipped)
    assert abs(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)) - 1.0) < 1e-6


def test_small_gradients_pass_unchanged():
    _, grads = _model_and_grads()
    small = _scaled_to(grads, 1.0)
    clipped, _ = tf.clip_by_global_norm(small, 5.0)
    for before, after in zip(small, clipped):
        np.testing.assert_array_equal(after.numpy(), before.numpy())


def test_optimizer_global_clipnorm_equals_manual_clipping():
    model, grads = _model_and_grads()
    twin = keras.models.clone_model(model)
    twin.set_weights(model.get_weights())
    before = _flat(model.get_weights())
    big = _scaled_to(grads, 50.0)

    keras.optimizers.SGD(learning_rate=1.0, global_clipnorm=5.0).apply_gradients(
        zip(big, model.trainable_variables))
    clipped, _ = tf.clip_by_global_norm(big, 5.0)
    keras.optimizers.SGD(learning_rate=1.0).apply_gradients(zip(clipped, twin.trainable_variables))

    for by_optimizer, by_hand in zip(model.trainable_variables, twin.trainable_variables):
        np.testing.assert_allclose(by_optimizer.numpy(), by_hand.numpy(), rtol=0, atol=1e-6)
    # The step really was the clipped one: its length is the threshold, not 50.
    step = np.linalg.norm(_flat(model.get_weights()) - before)
    assert abs(step - 5.0) < 1e-3


def test_training_clips_by_the_true_norm_of_a_sparse_embedding_gradient(tmp_path):
    """One real training step moves the weights by exactly lr * clip, with the norm the dense gradient has.

    The cycle corpus repeats words in every batch, so the embedding's sparse
    gradient has several rows per word: squaring those rows as they come
    (Keras' global_clipnorm) would measure a smaller norm than the true one.
    """
    from lm_app import corpus
    from lm_app.config import TrainConfig
    from lm_app.train import StreamObjective, Trainer
    from tests.conftest import cycle_corpus

    files = [str(p) for p in sorted(cycle_corpus(tmp_path / "c", repeats=10).glob("*.txt"))]
    vocab = corpus.build_vocabulary(str(tmp_path / "c" / "*.txt"), min_count=0)
    cfg = TrainConfig(corpus=str(tmp_path / "c" / "*.txt"), vocab="unused", model_dir=str(tmp_path / "m"),
                      objective="stream", arch="lstm", layers=1, embedding=8, hidden=8, bptt=6,
                      batch_size=4, dropout=0.0, optimizer="sgd", learning_rate=1.0, clip_norm=0.01)
    trainer = Trainer(StreamObjective(cfg, vocab, files), len(vocab), cfg)
    rng = np.random.default_rng(0)  # weights large enough that the embedding's gradient weighs in the norm
    for weight in trainer.model.trainable_weights:
        weight.assign(rng.normal(0, 0.5, weight.shape).astype("float32"))
    x, y = next(iter(trainer.objective.batches(0, 0)))
    vars_ = trainer.model.trainable_variables
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(trainer.objective.token_losses(x, y, training=True)[0])
    grads = tape.gradient(loss, vars_)
    trainer.objective.start_epoch()
    assert any(isinstance(g, tf.IndexedSlices) for g in grads)
    true_norm = float(tf.linalg.global_norm([tf.convert_to_tensor(g) for g in grads]))
    sparse_norm = float(tf.linalg.global_norm(grads))  # what squaring the rows as they come measures
    assert true_norm > 0.01 and true_norm > sparse_norm * 1.002  # rows repeat

    before = [v.numpy().copy() for v in vars_]
    trainer.train_step(x, y)
    moved = [v.numpy() - b for v, b in zip(vars_, before)]
    # Scaled by the sparse norm, the step would be 0.01 * true / sparse >= 0.01002 long.
    assert abs(np.linalg.norm(_flat(moved)) - 0.01) < 0.01 * (true_norm / sparse_norm - 1) / 4
    expected = _flat([-0.01 / true_norm * tf.convert_to_tensor(g).numpy() for g in grads])
    assert np.linalg.norm(_flat(moved) - expected) < 1e-4 * np.linalg.norm(expected)

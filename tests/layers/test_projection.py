"""``project`` and ``Logits``: exactly a Dense layer, forward and backward, only scheduled differently."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from lm_app.layers import Logits, project


@pytest.mark.parametrize("shape", [(6, 4), (3, 5, 4)])
def test_project_has_the_gradients_of_x_w_plus_b(shape):
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=shape), tf.float32)
    w = tf.Variable(rng.normal(size=(4, 7)), dtype=tf.float32)
    b = tf.Variable(rng.normal(size=7), dtype=tf.float32)
    weights = tf.constant(rng.normal(size=(*shape[:-1], 7)), tf.float32)
    results = []
    for fn in (project, lambda x, w, b: tf.tensordot(x, w, 1) + b):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = fn(x, w, b)
            loss = tf.reduce_sum(y * weights)
        results.append([y, *tape.gradient(loss, [x, w, b])])
    assert results[0][0].shape == (*shape[:-1], 7)
    for ours, plain in zip(*results):
        np.testing.assert_allclose(ours.numpy(), plain.numpy(), rtol=1e-5, atol=1e-5)


def test_logits_equal_a_dense_layer_in_training_and_inference():
    x = np.random.default_rng(1).normal(size=(2, 3, 4)).astype("float32")
    dense, logits = keras.layers.Dense(5), Logits(5)
    dense.build(x.shape)
    logits.build(x.shape)
    assert [w.shape for w in logits.weights] == [w.shape for w in dense.weights]
    logits.set_weights(dense.get_weights())
    for training in (False, True):
        np.testing.assert_allclose(logits(x, training=training).numpy(), dense(x).numpy(), rtol=1e-6)
    again = Logits.from_config(logits.get_config())
    assert again.units == 5

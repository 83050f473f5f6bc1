"""Our Dropout: the very masks and numbers of keras.layers.Dropout, as a product."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from lm_app.layers import Dropout


# (3, 5, 7): a size that leaves a partial group of four draws and a partial vector of features.
@pytest.mark.parametrize("shape", [(4, 6, 8), (3, 5, 7), (2, 35, 200)])
@pytest.mark.parametrize("rate", [0.2, 0.5])
def test_same_outputs_and_gradients_as_keras_dropout(rate, shape, native_or_xla):
    x = tf.constant(np.random.default_rng(0).normal(size=shape), tf.float32)
    ours, theirs = Dropout(rate, seed=7), keras.layers.Dropout(rate, seed=7)
    for _ in range(3):  # the seed state advances in step
        results = []
        for layer in (ours, theirs):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = layer(x, training=True)
                loss = tf.reduce_sum(y * tf.range(float(shape[-1])))  # a different weight per feature
            results.append((y.numpy(), tape.gradient(loss, x).numpy()))
        (y_ours, g_ours), (y_theirs, g_theirs) = results
        np.testing.assert_array_equal(y_ours, y_theirs)
        np.testing.assert_array_equal(g_ours, g_theirs)
        dropped = (y_ours == 0).mean()
        assert 0.5 * rate < dropped < 1.5 * rate
    np.testing.assert_array_equal(ours(x, training=False).numpy(), x.numpy())


@pytest.mark.parametrize("shape", [(4, 6, 8), (3, 5, 7)])
def test_a_time_major_input_gets_the_masks_of_its_batch_major_twin(shape, native_or_xla):
    x = tf.constant(np.random.default_rng(1).normal(size=shape), tf.float32)  # batch-major
    batch_major, time_major = Dropout(0.3, seed=5), Dropout(0.3, seed=5)
    for _ in range(2):
        expected = batch_major(x, training=True)
        got = time_major(tf.transpose(x, [1, 0, 2]), training=True, time_major=True)
        np.testing.assert_array_equal(tf.transpose(got, [1, 0, 2]).numpy(), expected.numpy())

"""The fused LSTM layer equals the readable cell loop: outputs, states and gradients."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from lm_app.layers import LSTM


def run(layer, x, initial_state, training=False):
    """Outputs, final states and the gradients of a fixed random projection of them.

    A time-major layer is given ``x`` transposed, and its output is transposed
    back, so that every layer's results compare with the batch-major loop's.
    """
    with tf.GradientTape() as tape:
        tape.watch(x)
        if layer.time_major:
            out, h, c = layer(tf.transpose(x, [1, 0, 2]), initial_state=initial_state, training=training)
            out = tf.transpose(out, [1, 0, 2]) if layer.return_sequences else out
        else:
            out, h, c = layer(x, initial_state=initial_state, training=training)
        g = np.random.default_rng(9).normal(size=out.shape).astype("float32")
        loss = tf.reduce_sum(out * g) + tf.reduce_sum(c * c)
    grads = tape.gradient(loss, [x, *initial_state, *layer.trainable_weights])
    return [out, h, c], grads


@pytest.mark.parametrize("batch", [3, 9])  # 9: on a multi-core CPU, two parts of 4 and 5 rows
@pytest.mark.parametrize("training", [False, True])  # True: the loops with hand-written BPTT
@pytest.mark.parametrize("peephole", [False, True])
@pytest.mark.parametrize("return_sequences", [True, False])
@pytest.mark.parametrize("time_major", [False, True])
def test_fused_kernel_equals_the_cell_loop(peephole, return_sequences, training, batch, time_major,
                                           native_or_xla):
    if native_or_xla == "native" and (not training or peephole):
        pytest.skip("inference and peepholes take the tf.scan path whichever loops train")
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(batch, 7, 5)), tf.float32)
    state = [tf.Variable(rng.normal(size=(batch, 4)), dtype=tf.float32) for _ in range(2)]
    fused = LSTM(4, peephole=peephole, return_sequences=return_sequences, return_state=True,
                 time_major=time_major)
    loop = LSTM(4, peephole=peephole, return_sequences=return_sequences, return_state=True, fused=False)
    fused.build(x.shape)
    loop.build(x.shape)
    weights = [rng.normal(size=w.shape).astype("float32") * 0.5 for w in fused.get_weights()]
    fused.set_weights(weights)
    loop.set_weights(weights)
    out_f, grads_f = run(fused, x, state, training)
    out_l, grads_l = run(loop, x, state, training)
    for a, b in zip(out_f + grads_f, out_l + grads_l):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-5)


def test_masked_input_takes_the_loop_and_matches_keras():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 6, 3)).astype("float32")
    mask = np.array([[1, 1, 1, 1, 0, 0], [0, 0, 1, 1, 1, 1]], bool)
    ours = LSTM(4, return_sequences=False)
    builtin = keras.layers.LSTM(4)
    ours.build(x.shape)
    builtin.build(x.shape)
    ours.set_weights(builtin.get_weights())
    np.testing.assert_allclose(ours(x, mask=mask).numpy(), builtin(x, mask=mask).numpy(), atol=1e-6)


@pytest.mark.parametrize("return_sequences", [True, False])
def test_a_time_major_layer_on_the_readable_loop_reads_time_major_masks(return_sequences):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 6, 3)).astype("float32")
    mask = np.array([[1, 1, 1, 1, 0, 0], [0, 0, 1, 1, 1, 1]], bool)
    batch_major = LSTM(4, return_sequences=return_sequences, return_state=True, fused=False)
    time_major = LSTM(4, return_sequences=return_sequences, return_state=True, fused=False, time_major=True)
    batch_major.build(x.shape)
    time_major.build(x.transpose(1, 0, 2).shape)
    time_major.set_weights(batch_major.get_weights())
    expected = batch_major(x, mask=mask)
    got = time_major(x.transpose(1, 0, 2), mask=mask.T)
    if return_sequences:
        got[0] = tf.transpose(got[0], [1, 0, 2])
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6)


def test_layer_round_trips_through_a_keras_file(tmp_path):
    inputs = keras.Input((5, 3))
    model = keras.Model(inputs, LSTM(4, peephole=True, forget_bias=0.5, return_sequences=True)(inputs))
    path = tmp_path / "m.keras"
    model.save(path)
    again = keras.saving.load_model(path)
    x = np.random.default_rng(2).normal(size=(2, 5, 3)).astype("float32")
    np.testing.assert_array_equal(model(x).numpy(), again(x).numpy())
    assert again.layers[1].get_config()["forget_bias"] == 0.5

"""The whole-sequence GRU layer equals the readable cell loop and keras.layers.GRU: outputs, states, gradients."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from lm_app.layers import GRU


def run(layer, x, h0, training=False):
    """Outputs, final state and the gradients of a fixed random projection of them (batch-major, as the loop's)."""
    with tf.GradientTape() as tape:
        tape.watch(x)
        if getattr(layer, "time_major", False):
            out, h = layer(tf.transpose(x, [1, 0, 2]), initial_state=[h0], training=training)
            out = tf.transpose(out, [1, 0, 2]) if layer.return_sequences else out
        else:
            out, h = layer(x, initial_state=[h0], training=training)
        g = np.random.default_rng(9).normal(size=out.shape).astype("float32")
        loss = tf.reduce_sum(out * g) + tf.reduce_sum(h * h)
    grads = tape.gradient(loss, [x, h0, *layer.trainable_weights])
    return [out, h], grads


def twins(batch, reset_after=True, **kwargs):
    """Inputs, a state, and a fused layer and a loop layer (``fused=False``) with the same random weights."""
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(batch, 7, 5)), tf.float32)
    h0 = tf.Variable(rng.normal(size=(batch, 4)), dtype=tf.float32)
    loop_kwargs = {k: v for k, v in kwargs.items() if k != "time_major"}
    fused = GRU(4, reset_after=reset_after, return_state=True, **kwargs)
    loop = GRU(4, reset_after=reset_after, return_state=True, fused=False, **loop_kwargs)
    fused.build(x.shape if not kwargs.get("time_major") else (7, batch, 5))
    loop.build(x.shape)
    weights = [rng.normal(size=w.shape).astype("float32") * 0.5 for w in fused.get_weights()]
    fused.set_weights(weights)
    loop.set_weights(weights)
    return x, h0, fused, loop


def assert_all_close(a, b):
    for u, v in zip(a, b):
        np.testing.assert_allclose(u.numpy(), v.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("batch", [3, 9])  # 9: on a multi-core CPU, parts of unequal rows
@pytest.mark.parametrize("training", [False, True])  # True: the loops with hand-written BPTT
@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("return_sequences", [True, False])
@pytest.mark.parametrize("time_major", [False, True])
def test_fused_layer_equals_the_cell_loop(reset_after, return_sequences, training, batch, time_major,
                                          native_or_xla):
    if native_or_xla == "native" and (not training or not reset_after):
        pytest.skip("inference and reset-before take the tf.scan path whichever loops train")
    x, h0, fused, loop = twins(batch, reset_after, return_sequences=return_sequences, time_major=time_major)
    out_f, grads_f = run(fused, x, h0, training)
    out_l, grads_l = run(loop, x, h0, training)
    assert_all_close(out_f + grads_f, out_l + grads_l)


def test_fused_training_equals_keras_gru(native_or_xla):
    x, h0, fused, _ = twins(6, return_sequences=True)
    builtin = keras.layers.GRU(4, return_sequences=True, return_state=True)
    builtin.build(x.shape)
    builtin.set_weights(fused.get_weights())  # the same layout: kernel, recurrent_kernel, bias (2, 3H)
    out_f, grads_f = run(fused, x, h0, training=True)
    out_k, grads_k = run(builtin, x, h0, training=True)
    assert_all_close(out_f + grads_f, out_k + grads_k)


def test_the_state_carries_across_chunks(native_or_xla):
    """Two chunks, the second from the first's final state, are one chunk of both (the stream protocol's premise)."""
    x, h0, fused, _ = twins(5, return_sequences=True)
    whole, h_whole = fused(x, initial_state=[h0], training=True)
    first, h_first = fused(x[:, :3], initial_state=[h0], training=True)
    second, h_second = fused(x[:, 3:], initial_state=[h_first], training=True)
    np.testing.assert_allclose(tf.concat([first, second], 1).numpy(), whole.numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(h_second.numpy(), h_whole.numpy(), rtol=1e-6, atol=1e-6)


def test_input_dropout_on_the_fused_path_equals_the_loops(native_or_xla):
    """The same seed draws the same per-sequence mask on both paths, so outputs and gradients agree."""
    x, h0, fused, loop = twins(4, return_sequences=True, dropout=0.5, seed=3)
    out_f, grads_f = run(fused, x, h0, training=True)
    out_l, grads_l = run(loop, x, h0, training=True)
    assert_all_close(out_f + grads_f, out_l + grads_l)
    _, _, plain, _ = twins(4, return_sequences=True)
    assert not np.allclose(out_f[0].numpy(), run(plain, x, h0, training=True)[0][0].numpy())


def test_layer_round_trips_through_a_keras_file(tmp_path):
    inputs = keras.Input((5, 3))
    model = keras.Model(inputs, GRU(4, reset_after=False, return_sequences=True)(inputs))
    path = tmp_path / "m.keras"
    model.save(path)
    again = keras.saving.load_model(path)
    x = np.random.default_rng(2).normal(size=(2, 5, 3)).astype("float32")
    np.testing.assert_array_equal(model(x).numpy(), again(x).numpy())
    assert again.layers[1].get_config()["reset_after"] is False

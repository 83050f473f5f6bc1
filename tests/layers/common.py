"""Helpers shared by the cell tests: comparison with the Keras built-ins on masked input, numeric gradients, save/load, dropout."""
import keras
import numpy as np
import tensorflow as tf

from lm_app.layers import RNN

BATCH, STEPS, FEATURES, UNITS = 4, 6, 3, 5


def _n_states(cell):
    return len(cell.state_size) if isinstance(cell.state_size, list) else 1


def masked_batch(seed=0, dtype="float32"):
    """Random inputs and a padding mask: one full row, two right-padded, one left-padded."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(BATCH, STEPS, FEATURES)).astype(dtype)
    mask = np.ones((BATCH, STEPS), dtype=bool)
    mask[1, 4:] = False  # right-padded
    mask[2, 1:] = False  # right-padded to a single step
    mask[3, :2] = False  # left-padded
    return x, mask


def randomize(layer, seed=1, scale=0.5):
    """Random values in every weight (biases and peepholes too), so that none is trivially 0 or 1."""
    rng = np.random.default_rng(seed)
    layer.set_weights([scale * rng.normal(size=w.shape).astype(w.dtype) for w in layer.get_weights()])


def assert_matches_builtin(builtin, cell, return_sequences, seed=0, atol=1e-5):
    """Same weights: same outputs, final states and gradients as the Keras layer, on masked input.

    ``builtin`` is e.g. ``keras.layers.LSTM(UNITS, return_sequences=..., return_state=True)``.
    """
    x, mask = masked_batch(seed)
    ours = RNN(cell, return_sequences=return_sequences, return_state=True)
    builtin(x, mask=mask)
    ours(x, mask=mask)
    randomize(builtin, seed + 1)
    ours.set_weights(builtin.get_weights())
    assert [v.shape for v in ours.trainable_variables] == [v.shape for v in builtin.trainable_variables]

    rng = np.random.default_rng(seed + 2)
    x = tf.constant(x)
    results = []
    for layer in (builtin, ours):
        with tf.GradientTape() as tape:
            tape.watch(x)
            outputs = layer(x, mask=mask)
            if not results:  # the same random weights G on both sides
                gs = [tf.constant(rng.normal(size=o.shape).astype("float32")) for o in outputs]
            loss = tf.add_n([tf.reduce_sum(o * g) for o, g in zip(outputs, gs)])
        grads = tape.gradient(loss, [x, *layer.trainable_variables])
        results.append(([o.numpy() for o in outputs], [g.numpy() for g in grads]))

    (out_k, grad_k), (out_o, grad_o) = results
    assert len(out_k) == len(out_o) == 1 + _n_states(cell)
    for a, b in zip(out_k, out_o):
        np.testing.assert_allclose(b, a, rtol=0, atol=atol)
    names = ["x"] + [v.name for v in builtin.trainable_variables]
    for name, a, b in zip(names, grad_k, grad_o):
        assert np.abs(a).max() > 1e-3, f"gradient of {name} is trivially small"
        np.testing.assert_allclose(b, a, rtol=0, atol=atol, err_msg=name)
    # The padded steps did not move the state: row 2 after one step equals its final state.
    if return_sequences:
        np.testing.assert_allclose(out_o[0][2, -1], out_o[0][2, 0], rtol=0, atol=1e-7)


def max_numeric_gradient_error(cell, seed=0, delta=1e-5):
    """Largest gap between TF's gradients and central differences, in float64.

    ``cell`` must be built with ``dtype="float64"``.  The weights are fed in as
    tensors through ``stateless_call``, so the weights' gradients are checked
    as well as those of the inputs and the initial state.
    """
    rng = np.random.default_rng(seed)
    rnn = RNN(cell, return_sequences=True, dtype="float64")
    x = tf.constant(rng.normal(size=(2, 4, FEATURES)))
    rnn(x)
    randomize(rnn, seed + 1)
    n_states = _n_states(cell)
    states = [tf.constant(0.5 * rng.normal(size=(2, UNITS))) for _ in range(n_states)]
    weights = [tf.constant(v.numpy()) for v in rnn.trainable_variables]
    frozen = [v.numpy() for v in rnn.non_trainable_variables]
    g = tf.constant(rng.normal(size=(2, 4, UNITS)))

    @tf.function  # one graph for the hundreds of evaluations, instead of eager steps
    def loss(x, *rest):
        states, weights = list(rest[:n_states]), list(rest[n_states:])
        out, _ = rnn.stateless_call(weights, frozen, x, initial_state=states)
        return tf.reduce_sum(out * g)

    theoretical, numerical = tf.test.compute_gradient(loss, [x, *states, *weights], delta=delta)
    assert all(np.abs(t).max() > 1e-3 for t in theoretical)
    return max(np.abs(t - n).max() for t, n in zip(theoretical, numerical))


def assert_round_trip(cell, tmp_path):
    """A model with the cell, saved to ``.keras`` and loaded back, computes the same; returns it."""
    inputs = keras.Input((STEPS, FEATURES))
    hidden = RNN(cell, return_sequences=True)(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2)(hidden))
    randomize(model)
    x, _ = masked_batch()
    before = model.predict(x, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), before)
    assert type(loaded.layers[1].cell) is type(cell)
    return loaded


def assert_dropout_behaves(make_cell, dropout, recurrent_dropout):
    """Training with dropout changes outputs, reproducibly with a seed; inference is untouched."""
    x, _ = masked_batch()
    layers = [RNN(make_cell(dropout=dropout, recurrent_dropout=recurrent_dropout,
                                         seed=seed), return_sequences=True)
              for seed in (7, 7, 8)]
    plain = RNN(make_cell(), return_sequences=True)
    plain(x)
    randomize(plain)
    for layer in layers:
        layer(x)
        layer.set_weights(plain.get_weights())
    reference = plain(x).numpy()
    first, again, other = (layer(x, training=True).numpy() for layer in layers)
    assert np.abs(first - reference).max() > 1e-3  # dropout did something
    np.testing.assert_array_equal(first, again)  # same seed, same masks
    assert np.abs(first - other).max() > 1e-3  # another seed, other masks
    np.testing.assert_array_equal(layers[0](x, training=False).numpy(), reference)


def assert_matches_numpy_bptt(cell, forward, backward, seed=3):
    """A one-state cell's outputs and every gradient equal the hand-written NumPy BPTT's.

    ``forward(x, h0, *weights)`` and ``backward(x, h0, *weights, G)`` come from
    ``lm_app.numpy_reference``; ``cell`` must be built with ``dtype="float64"``.
    """
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(3, 7, 4))
    h0 = 0.5 * rng.normal(size=(3, UNITS))
    G = rng.normal(size=(3, 7, UNITS))
    rnn = RNN(cell, return_sequences=True, dtype="float64")
    rnn(x)
    randomize(rnn, scale=0.7)  # non-zero biases, so that their paths are exercised
    weights = [v.numpy() for v in rnn.trainable_variables]

    x_t, h0_t = tf.constant(x), tf.constant(h0)
    with tf.GradientTape() as tape:
        tape.watch([x_t, h0_t])
        out = rnn(x_t, initial_state=[h0_t])
        loss = tf.reduce_sum(out * G)
    grads = tape.gradient(loss, [x_t, h0_t, *rnn.trainable_variables])

    ref_out = forward(x, h0, *weights)
    ref_out = ref_out[0] if isinstance(ref_out, tuple) else ref_out  # (outputs, cache) or outputs
    np.testing.assert_allclose(out.numpy(), ref_out, rtol=0, atol=1e-12)
    ref = backward(x, h0, *weights, G)
    for name, got in zip(["x", "h0", "W", "U", "b"], grads):
        np.testing.assert_allclose(got.numpy(), ref[name], rtol=0, atol=1e-5, err_msg=name)
        assert np.abs(ref[name]).max() > 1e-2, name

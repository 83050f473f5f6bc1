"""Attention against NumPy's reading of its formulas; masking, query ranks, save/load, gradients."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from lm_app.layers import Attention

from .common import randomize

BATCH, TQ, TK, Q_DIM, K_DIM, V_DIM, UNITS = 4, 3, 6, 5, 7, 2, 4


def batch(seed=0, q_dim=Q_DIM):
    """Queries, keys, values, and a mask: one full row, two padded, one with no real key at all."""
    rng = np.random.default_rng(seed)
    query = rng.normal(size=(BATCH, TQ, q_dim)).astype("float32")
    keys = rng.normal(size=(BATCH, TK, K_DIM)).astype("float32")
    values = rng.normal(size=(BATCH, TK, V_DIM)).astype("float32")
    mask = np.ones((BATCH, TK), dtype=bool)
    mask[1, 4:] = False  # right-padded
    mask[2, [0, 2, 5]] = False  # holes anywhere
    mask[3, :] = False  # nothing to attend to
    return query, keys, values, mask


def numpy_attention(layer, query, keys, values, mask):
    """The module's equations, written out for one (batch, Tq, q_dim) block of queries."""
    if layer.score == "additive":
        W1, W2, v = (w.numpy().astype(np.float64) for w in
                     (layer.query_kernel, layer.key_kernel, layer.score_vector))
        hidden = np.tanh((query @ W1)[:, :, None, :] + (keys @ W2)[:, None, :, :])
        scores = hidden @ v
    elif layer.score == "general":
        scores = np.einsum("bqi,ij,bkj->bqk", query, layer.kernel.numpy().astype(np.float64), keys)
    else:
        scores = np.einsum("bqi,bki->bqk", query, keys)
    weights = np.zeros_like(scores)
    for b in range(len(scores)):
        real = np.flatnonzero(mask[b])
        if real.size:
            e = np.exp(scores[b][:, real] - scores[b][:, real].max(axis=-1, keepdims=True))
            weights[b][:, real] = e / e.sum(axis=-1, keepdims=True)
    return scores, weights, weights @ values


def make(score, q_dim=Q_DIM, k_dim=K_DIM, seed=1, scale=0.8, **kwargs):
    layer = Attention(score, **kwargs)
    layer(np.zeros((1, q_dim), "float32"), np.zeros((1, 2, k_dim), "float32"))
    randomize(layer, seed, scale=scale)
    return layer


@pytest.mark.parametrize("rank", [2, 3])
@pytest.mark.parametrize("score", ["additive", "general", "dot"])
def test_matches_numpy(score, rank):
    query, keys, values, mask = batch(q_dim=K_DIM if score == "dot" else Q_DIM)
    layer = make(score, q_dim=query.shape[-1])
    want_scores, want_weights, want_context = numpy_attention(
        layer, query.astype(np.float64), keys.astype(np.float64), values.astype(np.float64), mask)
    if rank == 2:
        query, want_weights, want_context = query[:, 0], want_weights[:, 0], want_context[:, 0]
    context, weights = layer(query, keys, values, mask=mask)
    assert context.shape == want_context.shape and weights.shape == want_weights.shape
    np.testing.assert_allclose(weights.numpy(), want_weights, rtol=0, atol=1e-5)
    np.testing.assert_allclose(context.numpy(), want_context, rtol=0, atol=1e-5)
    q3 = query if rank == 3 else query[:, None]
    np.testing.assert_allclose(layer.scores(q3, keys).numpy(), want_scores[:, :q3.shape[1]],
                               rtol=0, atol=1e-5)
    assert np.abs(want_weights[0] - 1 / TK).max() > 1e-2  # the scores made a difference


@pytest.mark.parametrize("score", ["additive", "general"])
def test_query_ranks_agree(score):
    query, keys, values, mask = batch(seed=3)
    layer = make(score)
    context3, weights3 = layer(query, keys, values, mask=mask)
    for t in range(TQ):
        context, weights = layer(query[:, t], keys, values, mask=mask)
        np.testing.assert_allclose(context.numpy(), context3[:, t].numpy(), rtol=0, atol=1e-6)
        np.testing.assert_allclose(weights.numpy(), weights3[:, t].numpy(), rtol=0, atol=1e-6)


@pytest.mark.parametrize("score", ["additive", "general"])
def test_masked_keys_get_exactly_zero(score):
    query, keys, values, mask = batch(seed=4)
    layer = make(score, scale=1.0)
    keys = 50 * keys  # large scores: exp(-1e9 + score) is still 0, no leak through padding
    context, weights = layer(query, keys, values, mask=mask)
    weights, context = weights.numpy(), context.numpy()
    assert np.all(weights[~np.broadcast_to(mask[:, None, :], weights.shape)] == 0.0)
    np.testing.assert_allclose(weights[:3].sum(axis=-1), 1.0, rtol=0, atol=1e-6)
    # Changing what lies under the padding changes nothing.
    keys2, values2 = keys.copy(), values.copy()
    keys2[~mask], values2[~mask] = 1e3, -1e3
    context2, weights2 = layer(query, keys2, values2, mask=mask)
    np.testing.assert_array_equal(weights2.numpy()[:3], weights[:3])
    np.testing.assert_allclose(context2.numpy(), context, rtol=0, atol=1e-6)


@pytest.mark.parametrize("score", ["additive", "general", "dot"])
def test_fully_masked_row_gives_zeros_and_finite_gradients(score):
    query, keys, values, mask = batch(seed=5, q_dim=K_DIM if score == "dot" else Q_DIM)
    layer = make(score, q_dim=query.shape[-1])
    query, keys = tf.constant(query), tf.constant(keys)
    with tf.GradientTape() as tape:
        tape.watch([query, keys])
        context, weights = layer(query, keys, values, mask=mask)
        loss = tf.reduce_sum(context ** 2) + tf.reduce_sum(weights ** 2)
    grads = tape.gradient(loss, [query, keys, *layer.trainable_variables])
    np.testing.assert_array_equal(weights[3].numpy(), 0.0)
    np.testing.assert_array_equal(context[3].numpy(), 0.0)
    assert np.isfinite(weights.numpy()).all() and np.isfinite(context.numpy()).all()
    assert all(np.isfinite(g.numpy()).all() for g in grads)
    np.testing.assert_array_equal(grads[0].numpy()[3], 0.0)  # nothing to learn from that row


def test_no_mask_is_a_plain_softmax():
    query, keys, values, _ = batch(seed=6)
    layer = make("general")
    _, want, want_context = numpy_attention(layer, query.astype(np.float64),
                                            keys.astype(np.float64), values.astype(np.float64),
                                            np.ones((BATCH, TK), bool))
    context, weights = layer(query, keys, values)
    np.testing.assert_allclose(weights.numpy(), want, rtol=0, atol=1e-5)
    np.testing.assert_allclose(context.numpy(), want_context, rtol=0, atol=1e-5)


def test_values_default_to_keys():
    query, keys, _, mask = batch(seed=7)
    layer = make("additive")
    context, _ = layer(query, keys, mask=mask)
    again, _ = layer(query, keys, keys, mask=mask)
    assert context.shape == (BATCH, TQ, K_DIM)
    np.testing.assert_array_equal(context.numpy(), again.numpy())


def test_weight_layout():
    additive = make("additive", units=UNITS)
    assert [(v.path.split("/")[-1], tuple(v.shape)) for v in additive.weights] == [
        ("query_kernel", (Q_DIM, UNITS)), ("key_kernel", (K_DIM, UNITS)),
        ("score_vector", (UNITS,))]
    assert tuple(make("additive").score_vector.shape) == (K_DIM,)  # units defaults to k_dim
    assert [(v.path.split("/")[-1], tuple(v.shape)) for v in make("general").weights] == [
        ("kernel", (Q_DIM, K_DIM))]
    assert make("dot", q_dim=K_DIM).weights == []


def test_bad_arguments():
    with pytest.raises(ValueError, match="same size.*q_dim=5.*k_dim=7"):
        make("dot")
    with pytest.raises(ValueError, match="score must be one of"):
        Attention("cosine")
    with pytest.raises(ValueError, match="only for the additive"):
        Attention("general", units=3)
    with pytest.raises(ValueError, match="positive"):
        Attention("additive", units=0)


@pytest.mark.parametrize("score", ["additive", "general"])
def test_gradient_reaches_every_weight(score):
    query, keys, values, mask = batch(seed=8)
    layer = make(score)
    with tf.GradientTape() as tape:
        context, _ = layer(query, keys, values, mask=mask)
        loss = tf.reduce_sum(context * np.random.default_rng(9).normal(size=context.shape))
    grads = tape.gradient(loss, layer.trainable_variables)
    assert len(grads) == (3 if score == "additive" else 1)
    for variable, grad in zip(layer.trainable_variables, grads):
        assert grad is not None and np.abs(grad.numpy()).max() > 1e-4, variable.path


@pytest.mark.parametrize("score, units", [("additive", UNITS), ("general", None)])
def test_save_and_load(score, units, tmp_path):
    query_in = keras.Input((TQ, Q_DIM))
    keys_in = keras.Input((TK, K_DIM))
    values_in = keras.Input((TK, V_DIM))
    mask_in = keras.Input((TK,), dtype="bool")
    attention = Attention(score, units=units)
    model = keras.Model([query_in, keys_in, values_in, mask_in],
                        list(attention(query_in, keys_in, values_in, mask=mask_in)))
    randomize(model, seed=10)
    inputs = list(batch(seed=11))
    before = model.predict(inputs, verbose=0)
    model.save(tmp_path / "attention.keras")
    loaded = keras.saving.load_model(tmp_path / "attention.keras")
    after = loaded.predict(inputs, verbose=0)
    for a, b in zip(before, after):
        np.testing.assert_array_equal(b, a)
    restored = [layer for layer in loaded.layers if isinstance(layer, Attention)]
    assert len(restored) == 1
    assert (restored[0].score, restored[0].units) == (score, units)
    assert np.abs(before[1][0] - 1 / TK).max() > 1e-2  # the random weights were used

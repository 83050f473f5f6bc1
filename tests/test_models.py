"""The models (lm_app/models.py): the stream model's layers, state, tied softmax and initial weights; attention; one-hot."""
import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from lm_app import corpus, data, evaluate
from lm_app.config import TrainConfig
from lm_app.models import AttentionLM, StreamLM


@pytest.mark.parametrize("arch", ["rnn", "gru", "lstm"])
def test_the_time_major_model_equals_its_layers_run_batch_major(arch):
    """Training reads the stream model time-major; a plain batch-major pass over the same weights agrees."""
    import keras

    model = StreamLM(13, arch, embedding=6, hidden=5, layers=2, dropout=0.0, seed=1)
    ids = tf.constant(np.random.default_rng(0).integers(0, 13, size=(3, 4)), tf.int32)
    states = [[tf.random.stateless_normal((3, 5), seed=(i, j)) for j in range(model.states_per_layer)]
              for i in range(2)]
    logits, new_states = model(ids, states)
    x = model.embed(ids)
    for layer, state in zip(model.rnns, states):
        cell = layer.layer.cell if arch == "rnn" else layer.cell  # our LSTM and GRU layers hold their cell
        x, *state = keras.layers.RNN(cell, return_sequences=True, return_state=True)(x, initial_state=state)
        np.testing.assert_allclose(np.concatenate(new_states.pop(0)), np.concatenate(state), atol=1e-5)
    np.testing.assert_allclose(logits.numpy(), model.head(x).numpy(), atol=1e-5)


def test_the_state_really_carries_across_chunks(stream_model):
    """With 3-token chunks, only a carried state can tell which 'the' it is reading."""
    work, cfg, metrics = stream_model
    # The test part: 4 rows of 44 tokens, each read from a zero state, whose first words cannot
    # all be right, so the ceiling is near 0.9 (the strict test of the carried state follows).
    assert metrics["test"]["accuracy"] >= 0.85, metrics
    model, _, vocab = evaluate.load_trained(work / "lm")
    ids = data.token_ids(corpus.find_files(cfg.corpus), vocab)[:600]

    read = tf.function(model)  # hundreds of tiny calls: traced once per chunk shape, not run op by op

    def accuracy(chunk, reset):
        states, hits = model.zero_states(1), []
        for start in range(0, len(ids) - 1, chunk):
            if reset:
                states = model.zero_states(1)
            x = ids[None, start:start + chunk]
            y = ids[start + 1:start + 1 + chunk]
            logits, states = read(tf.constant(x[:, :len(y)]), states)
            hits.extend(np.argmax(logits[0], -1) == y)
        return np.mean(hits)

    assert accuracy(chunk=3, reset=False) >= 0.95
    # The same model with its memory cut before every word sees only that word: 'the' (7 of the
    # cycle's 22 words) has 7 different successors, so at most 16/22 = 73% can be right.
    assert accuracy(chunk=1, reset=True) < 0.8


def test_tied_softmax_is_the_embedding_matrix_in_training_and_inference():
    from lm_app.models import TiedOutput

    tied, untied = (StreamLM(11, embedding=8, hidden=8, layers=1, dropout=0.0, tied=t) for t in (True, False))
    ids = tf.constant(np.random.default_rng(4).integers(0, 11, size=(2, 3)), tf.int32)
    for model in (tied, untied):
        model(ids)
    # Only the output kernel (8 x 11) is gone: the softmax reads the embedding.
    assert len(untied.trainable_variables) - len(tied.trainable_variables) == 1
    head = tied.head
    assert isinstance(head, TiedOutput) and head.embedding_layer is tied.embed

    x = tf.constant(np.random.default_rng(5).normal(size=(2, 3, 8)), tf.float32)
    weights = tf.constant(np.random.default_rng(6).normal(size=(2, 3, 11)), tf.float32)
    results = []
    for training in (True, False):
        with tf.GradientTape() as tape:
            logits = head(x, training=training)
            loss = tf.reduce_sum(logits * weights)
        results.append([logits, *tape.gradient(loss, [tied.embed.embeddings, head.bias])])
    expected = x.numpy() @ tied.embed.embeddings.numpy().T + head.bias.numpy()
    np.testing.assert_allclose(results[0][0].numpy(), expected, rtol=1e-5, atol=1e-5)
    for a, b in zip(*results):
        np.testing.assert_allclose(np.asarray(tf.convert_to_tensor(a)), np.asarray(tf.convert_to_tensor(b)),
                                   rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("arch", ["lstm", "gru"])
def test_stream_models_start_from_the_recipes_initial_weights(arch):
    from lm_app.models import stream_model

    cfg = TrainConfig(objective="stream", arch=arch, embedding=64, hidden=100, layers=2, peephole=arch == "lstm",
                      seed=7)
    model = stream_model(cfg, 500)
    again = stream_model(cfg, 500)
    other = stream_model(dataclasses.replace(cfg, seed=8), 500)
    for a, b, c in zip(model.weights, again.weights, other.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())  # the seed decides
    weights = {w.path.split("/", 1)[1]: w.numpy() for w in model.trainable_weights}
    assert not np.array_equal(model.embed.embeddings.numpy(), other.embed.embeddings.numpy())
    for name, value in weights.items():
        if name.startswith(("embedding", "logits/kernel")):
            bound, std = 0.1, 0.1 / np.sqrt(3)
        elif name == "logits/bias" or "peephole" in name:
            assert not value.any(), name
            continue
        elif name.endswith("bias") and arch == "lstm":  # two draws summed: still centred, wider
            bound, std = 0.2, 0.1 * np.sqrt(2 / 3)
        else:  # the GRU's bias too: its two rows are PyTorch's b_ih and b_hh, one draw each
            bound, std = 0.1, 0.1 / np.sqrt(3)
        assert np.abs(value).max() <= bound, name
        assert abs(value.std() - std) < 0.1 * std and abs(value.mean()) < 0.2 * std, name


def recall_task(n, rng, keys=12, fillers=10, window=10):
    """Windows that start with a key word, then fillers; the next word is the key again."""
    key = rng.integers(2, 2 + keys, n)
    x = rng.integers(2 + keys, 2 + keys + fillers, (n, window))
    x[:, 0] = key
    return x.astype("int32"), key.astype("int32")


@pytest.mark.slow
def test_attention_recalls_the_first_word_of_the_window():
    rng = np.random.default_rng(0)
    keras.utils.set_random_seed(0)
    x, y = recall_task(4000, rng)
    x_test, y_test = recall_task(500, rng)
    model = AttentionLM(24, arch="gru", embedding=16, hidden=32, score="general")
    model.compile(keras.optimizers.Adam(0.01),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=64, epochs=6, verbose=0)
    logits, weights = model.attend(x_test)
    assert np.mean(np.argmax(logits, -1) == y_test) >= 0.95
    assert np.mean(np.argmax(weights, -1) == 0) > 0.9  # it learnt to look back at the key


def test_onehot_input_is_one_hot_vectors_times_the_input_weights():
    """The lookup model equals the notes' maths on materialised one-hot vectors, with their weights only."""
    from lm_app.models import build_model

    vocab, hidden = 11, 7
    model = build_model(vocab, "rnn", "onehot", hidden, seed=3)
    # W (vocab x hidden), U, b, then the softmax layer: nothing more is learned
    assert model.count_params() - sum(w.numpy().size for w in model.non_trainable_weights) == \
        vocab * hidden + hidden * hidden + hidden + hidden * vocab + vocab
    ids = np.array([[3, 1, 4, 1, 5], [9, 2, 6, 5, 3]], np.int32)
    W = model.get_layer("embedding").embeddings.numpy()
    cell = model.get_layer("rnn_1").cell
    U, b = cell.recurrent_kernel.numpy(), cell.bias.numpy()
    head = model.get_layer("logits")
    h = np.zeros((2, hidden), np.float32)
    for t in range(ids.shape[1]):
        h = np.tanh(np.eye(vocab, dtype=np.float32)[ids[:, t]] @ W + h @ U + b)
    want = h @ head.kernel.numpy() + head.bias.numpy()
    np.testing.assert_allclose(model(ids).numpy(), want, atol=1e-5, rtol=0)

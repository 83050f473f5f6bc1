"""The standard protocol: contiguous rows, bptt chunks, the state carried across them, and evaluate."""
import collections
import dataclasses
import json

import numpy as np
import pytest
import tensorflow as tf

from lm_app import corpus, data, evaluate, text
from lm_app.config import TrainConfig
from lm_app.models import StreamLM
from lm_app.train import train
from tests.conftest import cycle_corpus, shared_file


def test_rows_and_chunks_are_exactly_the_pytorch_recipe():
    ids = np.arange(23, dtype=np.int32)
    rows = data.batchify(ids, 4)  # 23 // 4 = 5 tokens a row, the last 3 dropped
    np.testing.assert_array_equal(rows, [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9],
                                         [10, 11, 12, 13, 14], [15, 16, 17, 18, 19]])
    chunks = [(x.numpy(), y.numpy()) for x, y in data.stream_chunks(rows, 3)]
    assert len(chunks) == data.count_chunks(rows, 3) == 2
    np.testing.assert_array_equal(chunks[0][0], rows[:, 0:3])
    np.testing.assert_array_equal(chunks[0][1], rows[:, 1:4])
    np.testing.assert_array_equal(chunks[1][0], rows[:, 3:4])  # the last chunk is shorter
    np.testing.assert_array_equal(chunks[1][1], rows[:, 4:5])


def test_stream_split_holds_out_contiguous_blocks():
    ids = np.arange(1000)
    train_ids, valid_ids, test_ids = data.split_stream(ids, 0.2, 0.0, cycles=10)
    assert len(valid_ids) == 200 and len(train_ids) == 800 and len(test_ids) == 0
    assert not set(train_ids) & set(valid_ids)
    assert np.all(np.diff(valid_ids[:20]) == 1)  # blocks of 20 consecutive tokens


def test_token_ids_end_lines_with_eos_in_pretokenized_mode(tmp_path):
    (tmp_path / "a.txt").write_text("x y\nz\n", encoding="utf-8")
    vocab = corpus.build_vocabulary(str(tmp_path / "a.txt"), min_count=0, mode="pretokenized")
    ids = data.token_ids([str(tmp_path / "a.txt")], vocab)
    assert [vocab.tokens[i] for i in ids] == ["x", "y", "<eos>", "z", "<eos>"]


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
        cell = layer.cell if arch == "lstm" else layer.layer.cell
        x, *state = keras.layers.RNN(cell, return_sequences=True, return_state=True)(x, initial_state=state)
        np.testing.assert_allclose(np.concatenate(new_states.pop(0)), np.concatenate(state), atol=1e-5)
    np.testing.assert_allclose(logits.numpy(), model.head(x).numpy(), atol=1e-5)


@pytest.fixture(scope="module")
def stream_model(tmp_path_factory):
    """A small stream LSTM trained on the cycle corpus with 3-token chunks."""
    work = tmp_path_factory.mktemp("stream")
    glob = str(cycle_corpus(work / "corpus", repeats=40) / "*.txt")
    vocab = corpus.build_vocabulary(glob, min_count=3)
    vocab.save(work / "vocab.txt")
    cfg = TrainConfig(corpus=glob, vocab=str(work / "vocab.txt"), model_dir=str(work / "lm"),
                      objective="stream", arch="lstm", bptt=3, batch_size=4, embedding=16, hidden=32,
                      layers=1, epochs=6, learning_rate=0.02, seed=3, patience=10)
    epochs = []
    metrics = train(cfg, verbose=0, log=lambda *a: None, on_epoch=epochs.append)
    history = json.loads((work / "lm" / "history.json").read_text())
    assert [e["val_loss"] for e in epochs] == history["val_loss"] and len(epochs) == cfg.epochs
    assert all(e["tokens_per_second"] > 0 for e in epochs)
    return work, cfg, metrics


def test_the_state_really_carries_across_chunks(stream_model):
    """With 3-token chunks, only a carried state can tell which 'the' it is reading."""
    work, cfg, metrics = stream_model
    # The test part: 4 rows of 44 tokens, each read from a zero state, whose first words cannot
    # all be right, so the ceiling is near 0.9 (the strict test of the carried state follows).
    assert metrics["test"]["accuracy"] >= 0.85, metrics
    model, _, vocab = evaluate.load_trained(work / "lm")
    ids = data.token_ids(corpus.find_files(cfg.corpus), vocab)[:600]

    def accuracy(chunk, reset):
        states, hits = model.zero_states(1), []
        for start in range(0, len(ids) - 1, chunk):
            if reset:
                states = model.zero_states(1)
            x = ids[None, start:start + chunk]
            y = ids[start + 1:start + 1 + chunk]
            logits, states = model(tf.constant(x[:, :len(y)]), states)
            hits.extend(np.argmax(logits[0], -1) == y)
        return np.mean(hits)

    assert accuracy(chunk=3, reset=False) >= 0.95
    # The same model with its memory cut before every word sees only that word: 'the' (7 of the
    # cycle's 22 words) has 7 different successors, so at most 16/22 = 73% can be right.
    assert accuracy(chunk=1, reset=True) < 0.8


def test_evaluate_perplexity_is_exp_of_the_mean_nll(stream_model, tmp_path):
    work, cfg, _ = stream_model
    heldout = tmp_path / "heldout.txt"
    heldout.write_text("the cat sat on the mat and the zebra ran to the park\n" * 3, encoding="utf-8")
    report = evaluate.evaluate(work / "lm", str(heldout))
    model, _, vocab = evaluate.load_trained(work / "lm")
    ids = np.array(vocab.ids(text.tokenize(heldout.read_text())), np.int32)
    logits, _ = model(tf.constant(ids[None, :-1]))
    log_probs = tf.nn.log_softmax(logits[0]).numpy().astype(np.float64)
    nll = -log_probs[np.arange(len(ids) - 1), ids[1:]].mean()
    assert report["tokens"] == len(ids) - 1
    assert report["cross_entropy"] == pytest.approx(nll, rel=1e-4)
    assert report["perplexity"] == pytest.approx(np.exp(nll), rel=1e-4)
    assert report["unk_share"] == pytest.approx(np.mean(ids[1:] == text.UNK_ID))


def test_evaluate_a_window_model_by_hand(tmp_path):
    glob = str(cycle_corpus(tmp_path / "corpus", repeats=10) / "*.txt")
    vocab = corpus.build_vocabulary(glob, min_count=3)
    vocab.save(tmp_path / "vocab.txt")
    cfg = TrainConfig(corpus=glob, vocab=str(tmp_path / "vocab.txt"), model_dir=str(tmp_path / "lm"),
                      embedding=8, hidden=8, epochs=1, batch_size=32)
    train(cfg, verbose=0, log=lambda *a: None)
    heldout = tmp_path / "h.txt"
    heldout.write_text("the dog ran to the park while the bird sang over", encoding="utf-8")
    report = evaluate.evaluate(tmp_path / "lm", str(heldout))
    model, _, _ = evaluate.load_trained(tmp_path / "lm")
    ids = np.array(vocab.ids(text.tokenize(heldout.read_text())), np.int32)
    windows = np.stack([ids[i:i + 5] for i in range(len(ids) - 5)])
    log_probs = tf.nn.log_softmax(model(tf.constant(windows))).numpy().astype(np.float64)
    nll = -log_probs[np.arange(len(windows)), ids[5:]].mean()
    assert report["tokens"] == len(ids) - 5
    assert report["perplexity"] == pytest.approx(np.exp(nll), rel=1e-4)


def test_a_few_steps_on_ptb_lower_the_test_perplexity(tmp_path):
    valid, test = shared_file("ptb", "ptb.valid.txt"), shared_file("ptb", "ptb.test.txt")
    vocab = corpus.build_vocabulary(str(valid), min_count=0, mode="pretokenized")
    vocab.save(tmp_path / "vocab.txt")
    cfg = TrainConfig(corpus=str(valid), vocab=str(tmp_path / "vocab.txt"),
                      model_dir=str(tmp_path / "lm"), objective="stream", arch="lstm", bptt=35,
                      batch_size=32, embedding=32, hidden=32, layers=1, epochs=1,
                      optimizer="sgd", learning_rate=10.0, clip_norm=0.25, seed=1)
    train(cfg, verbose=0, log=lambda *a: None)
    untrained = StreamLM(len(vocab), "lstm", 32, 32, 1, 0.0, seed=1)
    untrained(tf.zeros([1, 1], tf.int32))
    before = evaluate.score(untrained, dataclasses.replace(cfg), vocab, [str(test)])
    after = evaluate.evaluate(tmp_path / "lm", str(test), pretokenized=True)
    assert after["tokens"] == before["tokens"] > 80_000
    assert after["perplexity"] < 0.5 * before["perplexity"], (before, after)
    assert after["unk_share"] > 0.02  # PTB's own <unk> tokens are kept, not renamed


def test_the_exported_stream_model_reads_the_whole_prompt(stream_model):
    """Served raw text like the others, but conditioned on more than the last few words."""
    work, _, _ = stream_model
    serve = tf.saved_model.load(str(work / "lm")).signatures["serving_default"]
    prompts = ["The cat sat on the mat and the dog ran to the", "near the river the cat sat on the",
               "", "the"]
    out = serve(text=tf.constant(prompts))
    words = [w[0].decode() for w in out["words"].numpy()]
    assert words[:2] == ["park", "mat"]
    assert out["probabilities"].shape == (4, 19)
    np.testing.assert_allclose(out["probabilities"].numpy().sum(-1), 1, atol=1e-5)


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


def test_tied_needs_equal_embedding_and_hidden(tmp_path):
    from tests.conftest import assert_usage_error, run_cli, tiny_corpus

    glob, vocab = tiny_corpus(tmp_path)
    proc = run_cli("train", "--corpus", glob, "--vocab", vocab, "--model-dir", tmp_path / "lm",
                   "--objective", "stream", "--tied", "--embedding", 16, "--hidden", 32)
    assert_usage_error(proc, "--tied needs --embedding equal to --hidden")


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
        elif name.endswith("bias"):  # two draws summed: still centred, wider
            bound, std = 0.2, 0.1 * np.sqrt(2 / 3)
        else:
            bound, std = 0.1, 0.1 / np.sqrt(3)
        assert np.abs(value).max() <= bound, name
        assert abs(value.std() - std) < 0.1 * std and abs(value.mean()) < 0.2 * std, name

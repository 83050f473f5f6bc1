"""Encoder and Decoder: shapes, padding, steps equal teacher forcing, save/export, learning to reverse."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from lm_app.layers import Attention, Decoder, Encoder, padding_mask

from .common import randomize

VOCAB, EMBEDDING, UNITS = 12, 8, 6
BOS = 1
SOURCE = np.array([[3, 4, 5, 6, 7],
                   [8, 9, 10, 0, 0],  # right-padded
                   [11, 0, 0, 0, 0],  # one word
                   [2, 5, 2, 5, 9]])
TARGET_IN = np.array([[BOS, 7, 6, 5, 4, 3],
                      [BOS, 10, 9, 8, 0, 0],
                      [BOS, 11, 0, 0, 0, 0],
                      [BOS, 9, 5, 2, 5, 2]])
CONFIGS = [("lstm", False, "general"), ("gru", False, "additive"), ("rnn", False, "dot"),
           ("lstm", True, "additive"), ("gru", True, "general")]


def build(cell, bidirectional, score, seed=0):
    """An encoder-decoder pair, called once, with random weights everywhere."""
    keras.utils.set_random_seed(seed)
    encoder = Encoder(VOCAB, EMBEDDING, UNITS, cell=cell, bidirectional=bidirectional)
    decoder = Decoder(VOCAB, EMBEDDING, UNITS, cell=cell, score=score)
    outputs, states = encoder(SOURCE)
    decoder(TARGET_IN, states, outputs, padding_mask(SOURCE))
    randomize(encoder, seed + 1)
    randomize(decoder, seed + 2)
    return encoder, decoder


def run(encoder, decoder, source=SOURCE, target_in=TARGET_IN):
    outputs, states = encoder(source)
    logits, weights = decoder(target_in, states, outputs, padding_mask(source))
    return outputs, states, logits, weights


@pytest.mark.parametrize("cell, bidirectional, score", CONFIGS)
def test_shapes(cell, bidirectional, score):
    encoder, decoder = build(cell, bidirectional, score)
    outputs, states, logits, weights = run(encoder, decoder)
    batch, steps = SOURCE.shape
    units_out = 2 * UNITS if bidirectional else UNITS
    assert encoder.units_out == units_out
    assert outputs.shape == (batch, steps, units_out)
    assert [tuple(s.shape) for s in states] == [(batch, UNITS)] * (2 if cell == "lstm" else 1)
    assert logits.shape == (batch, TARGET_IN.shape[1], VOCAB)
    assert weights.shape == (batch, TARGET_IN.shape[1], steps)
    if bidirectional:
        bridges = [v.path.split("/")[-2] for v in encoder.weights if "bridge" in v.path]
        assert sorted(set(bridges)) == (["bridge_c", "bridge_h"] if cell == "lstm"
                                        else ["bridge_h"])


@pytest.mark.parametrize("cell, bidirectional, score", CONFIGS)
def test_padding_gets_no_attention_and_changes_nothing(cell, bidirectional, score):
    encoder, decoder = build(cell, bidirectional, score, seed=3)
    _, _, logits, weights = run(encoder, decoder)
    weights = weights.numpy()
    padded = np.broadcast_to(~padding_mask(SOURCE).numpy()[:, None, :], weights.shape)
    assert padded.any() and np.all(weights[padded] == 0.0)
    np.testing.assert_allclose(weights.sum(axis=-1), 1.0, rtol=0, atol=1e-5)
    # Row 1 without its padding: same final states, same logits.
    _, states, short_logits, short_weights = run(encoder, decoder, SOURCE[1:2, :3],
                                                 TARGET_IN[1:2])
    _, full_states, _, _ = run(encoder, decoder)
    for short, full in zip(states, full_states):
        np.testing.assert_allclose(short.numpy()[0], full.numpy()[1], rtol=0, atol=1e-5)
    np.testing.assert_allclose(short_logits.numpy()[0], logits.numpy()[1], rtol=0, atol=1e-5)
    np.testing.assert_allclose(short_weights.numpy()[0], weights[1, :, :3], rtol=0, atol=1e-5)


@pytest.mark.parametrize("cell, bidirectional, score", CONFIGS)
def test_step_by_step_equals_teacher_forcing(cell, bidirectional, score):
    encoder, decoder = build(cell, bidirectional, score, seed=5)
    outputs, states, logits, weights = run(encoder, decoder)
    mask = padding_mask(SOURCE)
    context = decoder.initial_context(outputs)
    assert context.shape == (len(SOURCE), outputs.shape[-1]) and not np.any(context.numpy())
    for t in range(TARGET_IN.shape[1]):
        step_logits, states, context, step_weights = decoder.step(
            tf.constant(TARGET_IN[:, t]), states, context, outputs, mask)
        assert step_logits.shape == (len(SOURCE), VOCAB)
        np.testing.assert_allclose(step_logits.numpy(), logits.numpy()[:, t], rtol=0, atol=1e-5)
        np.testing.assert_allclose(step_weights.numpy(), weights.numpy()[:, t], rtol=0, atol=1e-5)
    # Not trivially equal: the steps differ from one another.
    assert np.abs(logits.numpy()[:, 1] - logits.numpy()[:, 2]).max() > 1e-2


def test_input_feeding_uses_the_context():
    """The fed-back context enters the cell: another initial context, other logits."""
    encoder, decoder = build("gru", False, "general", seed=6)
    outputs, states = encoder(SOURCE)
    mask = padding_mask(SOURCE)
    plain, _ = decoder(TARGET_IN, states, outputs, mask)
    other, _ = decoder(TARGET_IN, states, outputs, mask, initial_context=outputs[:, 0])
    assert np.abs(plain.numpy()[:, 0] - other.numpy()[:, 0]).max() > 1e-3


def test_a_decoder_only_ever_stepped_builds_itself():
    encoder = Encoder(VOCAB, EMBEDDING, UNITS, cell="lstm")
    outputs, states = encoder(SOURCE)
    decoder = Decoder(VOCAB, EMBEDDING, UNITS, cell="lstm", score="additive")
    logits, states, context, weights = decoder.step(
        tf.constant(TARGET_IN[:, 0]), states, decoder.initial_context(outputs), outputs,
        padding_mask(SOURCE))
    assert decoder.built and logits.shape == (len(SOURCE), VOCAB)
    assert weights.shape == SOURCE.shape and context.shape == (len(SOURCE), UNITS)


def test_gradient_reaches_every_weight():
    encoder, decoder = build("lstm", True, "additive", seed=7)
    with tf.GradientTape() as tape:
        _, _, logits, _ = run(encoder, decoder)
        loss = tf.reduce_sum(logits * np.random.default_rng(8).normal(size=logits.shape))
    variables = encoder.trainable_variables + decoder.trainable_variables
    for variable, grad in zip(variables, tape.gradient(loss, variables)):
        assert grad is not None and np.abs(tf.convert_to_tensor(grad).numpy()).max() > 1e-5, \
            variable.path


def test_bad_arguments():
    with pytest.raises(ValueError, match="cell must be one of"):
        Encoder(VOCAB, EMBEDDING, UNITS, cell="transformer")
    with pytest.raises(ValueError, match="units must be positive"):
        Decoder(VOCAB, EMBEDDING, 0)
    encoder = Encoder(VOCAB, EMBEDDING, UNITS, cell="gru", bidirectional=True)
    outputs, states = encoder(SOURCE)
    with pytest.raises(ValueError, match="dot score needs"):  # 2*units keys, units queries
        Decoder(VOCAB, EMBEDDING, UNITS, cell="gru", score="dot")(
            TARGET_IN, states, outputs, padding_mask(SOURCE))


def test_save_and_load(tmp_path):
    source = keras.Input((None,), dtype="int32")
    target_in = keras.Input((None,), dtype="int32")
    encoder = Encoder(VOCAB, EMBEDDING, UNITS, cell="lstm", bidirectional=True)
    decoder = Decoder(VOCAB, EMBEDDING, UNITS, cell="lstm", score="additive")
    outputs, states = encoder(source)
    logits, weights = decoder(target_in, states, outputs, padding_mask(source))
    model = keras.Model([source, target_in], [logits, weights])
    randomize(model, seed=9)
    before = model.predict([SOURCE, TARGET_IN], verbose=0)
    model.save(tmp_path / "seq2seq.keras")
    loaded = keras.saving.load_model(tmp_path / "seq2seq.keras")
    for a, b in zip(before, loaded.predict([SOURCE, TARGET_IN], verbose=0)):
        np.testing.assert_array_equal(b, a)
    kinds = {type(layer) for layer in loaded.layers}
    assert {Encoder, Decoder} <= kinds
    restored = next(layer for layer in loaded.layers if isinstance(layer, Decoder))
    assert isinstance(restored.attention, Attention) and restored.score == "additive"
    assert Encoder.from_config(encoder.get_config()).get_config() == encoder.get_config()


@pytest.mark.slow
def test_learns_to_reverse():
    """Reversing 4 words of 10 needs attention to the mirrored position, learnt in seconds."""
    first, n_symbols, length = 2, 10, 4  # 0 = <pad>, 1 = <s>, 2..11 the words
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    every = np.stack(np.meshgrid(*[np.arange(first, first + n_symbols)] * length,
                                 indexing="ij"), axis=-1).reshape(-1, length)
    order = rng.permutation(len(every))
    held_out, train = every[order[:300]], every[order[300:]]  # never seen in training

    encoder = Encoder(first + n_symbols, 16, 32, cell="gru", bidirectional=True)
    decoder = Decoder(first + n_symbols, 16, 32, cell="gru", score="general")
    optimizer = keras.optimizers.Adam(0.01)

    def teacher_inputs(target):
        return np.concatenate([np.full((len(target), 1), BOS), target[:, :-1]], axis=1)

    @tf.function
    def train_step(source, target_in, target):
        with tf.GradientTape() as tape:
            outputs, states = encoder(source, training=True)
            logits, _ = decoder(target_in, states, outputs, padding_mask(source), training=True)
            loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(
                target, logits, from_logits=True))
        variables = encoder.trainable_variables + decoder.trainable_variables
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    for _ in range(300):
        source = train[rng.integers(0, len(train), 64)]
        target = source[:, ::-1]
        train_step(tf.constant(source), tf.constant(teacher_inputs(target)), tf.constant(target))

    # Greedy decoding, one step at a time, each argmax fed back.
    outputs, states = encoder(held_out)
    mask = padding_mask(held_out)
    context = decoder.initial_context(outputs)
    previous, predicted = np.full(len(held_out), BOS), []
    for _ in range(length):
        logits, states, context, weights = decoder.step(tf.constant(previous), states, context,
                                                        outputs, mask)
        previous = np.argmax(logits.numpy(), axis=-1)
        predicted.append(previous)
    exact = np.mean(np.all(np.stack(predicted, axis=1) == held_out[:, ::-1], axis=1))
    assert exact >= 0.95, exact
    # The last word written is the first one read: the attention learnt the mirror.
    assert np.mean(np.argmax(weights.numpy(), axis=-1) == 0) > 0.9


def test_step_runs_in_a_graph_while_loop():
    """Greedy decoding as one ``tf.while_loop`` of ``step`` gives what the eager loop gives."""
    encoder, decoder = build("lstm", True, "general", seed=10)
    steps = 5

    @tf.function(input_signature=[tf.TensorSpec((None, None), tf.int32)])
    def greedy(source):
        outputs, states = encoder(source)
        mask = padding_mask(source)
        previous = tf.fill(tf.shape(source)[:1], BOS)
        written = tf.TensorArray(tf.int32, size=steps)

        def body(t, previous, states, context, written):
            logits, states, context, _ = decoder.step(previous, states, context, outputs, mask)
            previous = tf.argmax(logits, axis=-1, output_type=tf.int32)
            return t + 1, previous, states, context, written.write(t, previous)

        *_, written = tf.while_loop(lambda t, *_: t < steps, body,
                                    (0, previous, states, decoder.initial_context(outputs),
                                     written))
        return tf.transpose(written.stack())

    outputs, states = encoder(SOURCE)
    mask = padding_mask(SOURCE)
    context, previous, want = decoder.initial_context(outputs), np.full(len(SOURCE), BOS), []
    for _ in range(steps):
        logits, states, context, _ = decoder.step(tf.constant(previous), states, context,
                                                  outputs, mask)
        previous = np.argmax(logits.numpy(), axis=-1)
        want.append(previous)
    got = greedy(tf.constant(SOURCE, tf.int32)).numpy()
    np.testing.assert_array_equal(got, np.stack(want, axis=1))
    assert len(np.unique(got)) > 1


def test_exports_to_a_saved_model(tmp_path):
    """Core ops only: the teacher-forced call survives a SavedModel, with any lengths."""
    encoder, decoder = build("gru", True, "additive", seed=11)
    module = tf.Module()
    module.encoder, module.decoder = encoder, decoder

    @tf.function(input_signature=[tf.TensorSpec((None, None), tf.int32)] * 2)
    def logits(source, target_in):
        outputs, states = encoder(source)
        return decoder(target_in, states, outputs, padding_mask(source))[0]

    module.logits = logits
    tf.saved_model.save(module, str(tmp_path / "seq2seq"))
    restored = tf.saved_model.load(str(tmp_path / "seq2seq"))
    for source, target_in in ((SOURCE, TARGET_IN), (SOURCE[:, :3], TARGET_IN[:, :2])):
        want = run(encoder, decoder, source, target_in)[2].numpy()
        got = restored.logits(tf.constant(source, tf.int32), tf.constant(target_in, tf.int32))
        np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=1e-6)

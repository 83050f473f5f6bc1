"""The dialogue SavedModel: a batch of contexts (turns as strings) in, a response and its log-probability out.

``serving_default`` decodes greedily; ``sample`` draws each word at a
temperature (VHRED draws z from the prior in both); neither writes ``<pad>``
or ``<unk>``.  ``prior`` and ``next_log_probs`` let a caller decode word by
word with generate's machinery (top-k, top-p, a seed that replays z too).  Inside the graph: the
normalisation, the last ``context_turns`` non-empty turns of each row (rows
are padded with empty strings; a shorter context is left-padded with empty
turns, as an empty turn was read in training), each turn's first
``max_turn_words`` words and its ``</s>``, the network, and a
``tf.while_loop`` that stops when every response has ended.  Core TensorFlow
ops only, so a process that never imports lm_app can serve it.
"""
import tensorflow as tf

from .. import export as lm_export
from .. import text

TURNS = tf.TensorSpec([None, None], tf.string, name="turns")


class DialogueModule(lm_export.NextWordModule):
    """The vocabulary tables of the language models' module, with a decoder loop instead of the top k."""

    def __init__(self, model, vocab_file, mode, context_turns, max_turn_words):
        super().__init__(model, vocab_file, context_turns, mode, k=1, objective="dialogue")
        self.max_turn_words = max_turn_words
        self.more_signatures = {"sample": self.sample, "prior": self.prior, "next_log_probs": self.next_log_probs}

    def context_ids(self, turns):
        """``[batch, context_turns, max_turn_words + 1]`` ids of each row's last non-empty turns."""
        k, eot = self.window, self.model.eot
        kept = tf.ragged.boolean_mask(turns, tf.strings.strip(turns) != "")[:, -k:]
        missing = k - kept.row_lengths()
        padding = tf.RaggedTensor.from_row_lengths(tf.fill([tf.reduce_sum(missing)], ""), missing)
        turns = tf.concat([padding, kept], axis=1).to_tensor(shape=[None, k])
        tokens = text.tf_tokenize(tf.reshape(turns, [-1]), self.mode)
        if self.mode == "pretokenized":
            tokens = tokens[:, :-1]  # </s> ends the turn, not <eos>
        ids = tf.cast(self.word_to_id.lookup(tokens[:, :self.max_turn_words]), tf.int32)
        ids = tf.concat([ids, tf.fill([tf.shape(turns)[0] * k, 1], eot)], axis=1)
        return tf.reshape(ids.to_tensor(text.PAD_ID, shape=[None, self.max_turn_words + 1]),
                          [-1, k, self.max_turn_words + 1])

    def respond(self, turns, temperature=None):
        words, log_prob = decode(self.model, self.context_ids(turns), self.max_turn_words + 1, temperature)
        real = (words != self.model.eot) & (words != text.PAD_ID)
        strings = tf.ragged.boolean_mask(self.id_to_word.lookup(tf.cast(words, tf.int64)), real)
        return {"response": tf.strings.reduce_join(strings, axis=-1, separator=" "), "log_prob": log_prob}

    @tf.function(input_signature=[TURNS], autograph=False)
    def serve(self, turns):
        return self.respond(turns)

    @tf.function(input_signature=[TURNS, tf.TensorSpec([], tf.float32, name="temperature")], autograph=False)
    def sample(self, turns, temperature):
        return self.respond(turns, tf.maximum(temperature, 1e-6))

    @tf.function(input_signature=[TURNS], autograph=False)
    def prior(self, turns):
        """The prior's ``mu`` and ``sigma`` of z per context (``[batch, 0]`` without z).

        A caller draws z once per answer from them, with its own generator.
        """
        model = self.model
        c = model.context(self.context_ids(turns))
        if not model.latent:
            none = tf.zeros([tf.shape(c)[0], 0])
            return {"mu": none, "sigma": none}
        mu, sigma = model.gaussian(model.prior, c)
        return {"mu": mu, "sigma": sigma}

    @tf.function(input_signature=[TURNS, tf.TensorSpec([None, None], tf.string, name="prefix"),
                                  tf.TensorSpec([None, None], tf.float32, name="z")], autograph=False)
    def next_log_probs(self, turns, prefix, z):
        """Log-probabilities of the word after ``prefix`` (the answer so far) given z: generate's callback."""
        model = self.model
        c = model.context(self.context_ids(turns))
        condition, states = model.start(c, z if model.latent else None)
        words = tf.cast(self.word_to_id.lookup(prefix), tf.int32)
        inputs = tf.concat([tf.fill([tf.shape(c)[0], 1], model.eot), words], axis=1)
        return {"log_probs": tf.nn.log_softmax(model.decode(inputs, condition, states)[:, -1])}


def decode(model, context, steps, temperature=None):
    """``(words [batch, <= steps], log-probability [batch])`` answering ``context`` ids [batch, turns, words].

    Greedy, or sampled at ``temperature``; a response ends at its ``</s>``,
    after which its row holds ``</s>``, and the loop stops once every row has
    ended (the columns never reached hold ``<pad>``).
    """
    c = model.context(context)
    condition, states = model.start(c, model.latent_sample(c)[0] if model.latent else None)
    batch = tf.shape(c)[0]
    # As generate bans them: <pad> is no word, and an answer of <unk> says nothing.
    banned = tf.reduce_sum(tf.one_hot([text.PAD_ID, text.UNK_ID], model.n_ids, on_value=-1e9, off_value=0.0), 0)

    def step(t, previous, states, done, log_prob, words):
        logits, states = model.step(previous, condition, states)
        logits += banned
        if temperature is None:
            chosen = tf.argmax(logits, axis=-1, output_type=tf.int32)
        else:
            chosen = tf.random.categorical(logits / temperature, 1, dtype=tf.int32)[:, 0]
        chosen = tf.where(done, model.eot, chosen)
        gained = tf.gather(tf.nn.log_softmax(logits), chosen, batch_dims=1)
        log_prob += tf.where(done, 0.0, gained)
        return t + 1, chosen, states, done | (chosen == model.eot), log_prob, words.write(t, chosen)

    def going(t, previous, states, done, *_):
        return (t < steps) & ~tf.reduce_all(done)

    start = (tf.constant(0), tf.fill([batch], model.eot), states, tf.zeros([batch], tf.bool),
             tf.zeros([batch]), tf.TensorArray(tf.int32, size=steps, element_shape=[None]))
    *_, log_prob, words = tf.while_loop(going, step, start)
    return tf.transpose(words.stack()), log_prob


def export(model, vocab_file, model_dir, mode, cfg, extra_files):
    """Write the dialogue SavedModel atomically, with the vocabulary and ``extra_files`` beside it."""
    return lm_export.export(
        model, vocab_file, model_dir, cfg.context_turns, mode, objective="dialogue", extra_files=extra_files,
        make_module=lambda asset: DialogueModule(model, asset, mode, cfg.context_turns, cfg.max_turn_words))

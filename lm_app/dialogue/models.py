"""HRED, VHRED and the flat seq2seq baseline: a context of turns in, the next turn's word logits out.

    HRED (Serban et al. 2016):
      u_i = RNN_utt(embed(turn_i))               the last state of each context turn
      c   = RNN_ctx(u_1 .. u_k)                  the context state
      h_0 = tanh(W_0 [c; z] + b_0)               (z only in VHRED)
      h_t = RNN_dec([embed(y_{t-1}); c; z], h_{t-1}),  logits_t = W_o h_t + b_o
    VHRED (Serban et al. 2017, julianser/hed-dlg-truncated):
      prior      N(mu_p, sigma_p) = MLP_p(c)
      posterior  N(mu_q, sigma_q) = MLP_q([c; mean of embed(response's words)])
                 (``posterior_reads`` "mean"; "rnn": MLP_q([c; RNN_utt(embed(response))]), the
                 papers' own, whose last state also tells how long the response is: z then
                 became a length code, the prior's draw of it set each answer's length, and a
                 low temperature no longer shortened answers as it does HRED's.  The mean of
                 the embeddings of ``posterior_reads="mean"`` (the reference code's "DCGM"
                 mean-pooling option) says which words, not how many)
      z = mu_q + sigma_q * eps in training (the reparameterisation), z ~ prior in inference
      loss = NLL + w * max(KL(q || p), free) in training, w rising linearly
             from 0 to 1 (KL annealing); held-out losses weigh the KL fully
      bag of words (Zhao et al. 2017, with ``bow_loss`` b > 0): in training,
             loss += b * sum over the response's words y of -log softmax(MLP_b([c; z]))_y,
             a response's words predicted from z all at once, with no word order
             for the decoder to lean on, so z must carry them (against collapse)
      The free nats (Kingma et al. 2016's free bits, a departure from VHRED's
      paper): a response's first ``free`` nats of KL cost nothing in training.
      Adam scales every gradient to a step of about its learning rate, so even
      an annealed KL, the posterior's only steady gradient while the decoder
      still ignores z, pulls q onto the prior early, before the decoder can
      learn to read z; below ``free`` nothing pulls.
    seq2seq (the HRED paper's flat baseline): the context turns, each ended by
      ``</s>``, read as one sequence by one RNN whose last state is ``c``.

The decoder is fed ``c`` (and ``z``) at every step, not only at the start, so
the context cannot fade over a long response.  ``step`` is one step of the
very decoder that teacher forcing runs (the same cell and weights), so
decoding one word at a time gives the probabilities training optimised.
The recurrent layers are the project's own (:func:`lm_app.models.recurrent_layer`).
"""
import keras
import tensorflow as tf
from keras import ops

from .. import losses, text
from ..models import GATES, recurrent_layer

SOFTPLUS_FLOOR = 1e-4  # keeps sigma away from 0, so log(sigma) and the KL stay finite


def gaussian_kl(mu_q, sigma_q, mu_p, sigma_p):
    """KL(N(mu_q, sigma_q) || N(mu_p, sigma_p)) of diagonal Gaussians, summed over the last axis."""
    return ops.sum(ops.log(sigma_p / sigma_q) + (sigma_q ** 2 + (mu_q - mu_p) ** 2) / (2 * sigma_p ** 2) - 0.5,
                   axis=-1)


def reparameterise(mu, sigma, eps):
    """``z = mu + sigma * eps``: a sample whose gradient reaches mu and sigma (eps ~ N(0, 1) is the noise)."""
    return mu + sigma * eps


def rnn_parameters(cell, inputs, units):
    """Weights of one of our recurrent layers (the GRU keeps two biases: ``reset_after``)."""
    gates = GATES[cell]
    return gates * (inputs + units) * units + (2 if cell == "gru" else 1) * gates * units


def flat_encoder_units(cell, embedding, hidden):
    """The seq2seq encoder's size that gives it about HRED's parameter count (the paper's fair baseline).

    HRED's utterance and context RNNs and its ``hidden``-wide context are set
    against one wider encoder, whose output also widens the decoder's input.
    """
    hred = (rnn_parameters(cell, embedding, hidden) + rnn_parameters(cell, hidden, hidden)
            + hidden * hidden + rnn_parameters(cell, embedding + hidden, hidden))

    def flat(units):
        return rnn_parameters(cell, embedding, units) + units * hidden + rnn_parameters(cell, embedding + units, hidden)

    return min(range(1, 8 * hidden), key=lambda units: abs(flat(units) - hred))


def mlp(hidden, out, name):
    """The prior's and posterior's two-layer network: ``out`` means and ``out`` raw scales."""
    return keras.Sequential([keras.layers.Dense(hidden, activation="tanh"),
                             keras.layers.Dense(hidden, activation="tanh"),
                             keras.layers.Dense(2 * out)], name=name)


class DialogueModel(keras.Model):
    """``arch`` hred, vhred or seq2seq over a vocabulary of ``vocab_size`` ids plus ``</s>``."""

    def __init__(self, vocab_size, arch="hred", cell="gru", embedding=64, hidden=128, word_drop=0.0,
                 kl_anneal_steps=0, kl_free_nats=0.0, bow_loss=0.0, seed=None, posterior_reads="mean", **kwargs):
        super().__init__(**kwargs)
        assert arch in ("hred", "vhred", "seq2seq"), arch  # TrainConfig.validate's rule
        self.arch, self.cell_kind, self.hidden = arch, cell, hidden
        self.eot = vocab_size  # </s>: dialogue.data.end_of_turn
        self.n_ids = vocab_size + 1
        self.word_drop = word_drop if arch == "vhred" else 0.0
        self.kl_anneal_steps = kl_anneal_steps
        self.kl_free_nats = kl_free_nats
        self.bow_loss = bow_loss if arch == "vhred" else 0.0
        self.posterior_reads = posterior_reads
        self.embed = keras.layers.Embedding(self.n_ids, embedding, name="embedding")
        if arch == "seq2seq":
            self.encoder = recurrent_layer(cell, flat_encoder_units(cell, embedding, hidden),
                                           return_sequences=False, name="encoder")
        else:
            self.utterance = recurrent_layer(cell, hidden, return_sequences=False, name="utterance")
            self.context_rnn = recurrent_layer(cell, hidden, return_sequences=False, name="context")
        self.latent = hidden if arch == "vhred" else 0
        if self.latent:
            self.prior = mlp(hidden, self.latent, "prior")
            self.posterior = mlp(hidden, self.latent, "posterior")
            # Steps trained so far, for the KL weight; a variable, so checkpoints resume it.
            self.kl_step = self.add_weight(shape=(), initializer="zeros", trainable=False, name="kl_step")
        if self.bow_loss:
            self.bag = keras.Sequential([keras.layers.Dense(hidden, activation="tanh"),
                                         keras.layers.Dense(self.n_ids)], name="bag_of_words")
        self.bridge = keras.layers.Dense(hidden, activation="tanh", name="bridge")
        self.decoder = recurrent_layer(cell, hidden, return_sequences=True, return_state=True, name="decoder")
        self.logits = keras.layers.Dense(self.n_ids, name="logits")
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build_all(self, context_turns=2, words=3):
        """Create every weight with a dummy batch, so counts and checkpoints see them."""
        x = ops.ones((1, context_turns, words), dtype="int32")
        self.token_losses(x, ops.ones((1, words), dtype="int32"), training=False)
        self.built = True
        return self

    def encode_turns(self, turns, training=False):
        """``[batch, words]`` turns -> ``[batch, hidden]``: each turn's last real state."""
        return self.utterance(self.embed(turns), mask=ops.not_equal(turns, text.PAD_ID), training=training)

    def context(self, context, training=False):
        """``[batch, turns, words]`` -> the context state ``c`` ``[batch, units]``."""
        batch, turns, words = ops.shape(context)[0], ops.shape(context)[1], ops.shape(context)[2]
        if self.arch == "seq2seq":
            flat = ops.reshape(context, (batch, turns * words))
            return self.encoder(self.embed(flat), mask=ops.not_equal(flat, text.PAD_ID), training=training)
        utterances = self.encode_turns(ops.reshape(context, (batch * turns, words)), training)
        return self.context_rnn(ops.reshape(utterances, (batch, turns, self.hidden)), training=training)

    def gaussian(self, network, inputs):
        mu, scale = ops.split(network(inputs), 2, axis=-1)
        return mu, ops.softplus(scale) + SOFTPLUS_FLOOR

    def read_response(self, response, training=False):
        """What the posterior reads of ``response``: its words' mean embedding, or the utterance RNN's state."""
        if self.posterior_reads == "rnn":
            return self.encode_turns(response, training)
        words = ops.cast(ops.logical_and(ops.not_equal(response, text.PAD_ID), ops.not_equal(response, self.eot)),
                         "float32")[:, :, None]
        return ops.sum(self.embed(response) * words, axis=1) / ops.maximum(ops.sum(words, axis=1), 1.0)

    def latent_sample(self, c, response=None, training=False):
        """``(z, KL per response or None)``: z from the posterior given the response, else from the prior."""
        prior = self.gaussian(self.prior, c)
        eps = keras.random.normal(ops.shape(prior[0]), seed=self.seed_generator)
        if response is None:
            return reparameterise(*prior, eps), None
        posterior = self.gaussian(self.posterior,
                                  ops.concatenate([c, self.read_response(response, training)], axis=-1))
        return reparameterise(*posterior, eps), gaussian_kl(*posterior, *prior)

    def start(self, c, z=None):
        """The decoder's conditioning ``[c; z]`` and its first states (an LSTM's memory starts at 0)."""
        condition = c if z is None else ops.concatenate([c, z], axis=-1)
        h = self.bridge(condition)
        return condition, [h, ops.zeros_like(h)] if self.cell_kind == "lstm" else [h]

    def decoder_inputs(self, response, training=False):
        """``[</s>, y_1 .. y_{T-1}]``; in VHRED training each word is ``<unk>`` with probability ``word_drop``."""
        batch = ops.shape(response)[0]
        inputs = ops.concatenate([ops.full((batch, 1), self.eot, dtype=response.dtype), response[:, :-1]], axis=1)
        if training and self.word_drop:
            drop = keras.random.uniform(ops.shape(inputs), seed=self.seed_generator) < self.word_drop
            drop = ops.logical_and(drop, ops.arange(ops.shape(inputs)[1])[None, :] > 0)
            inputs = ops.where(drop, ops.full_like(inputs, text.UNK_ID), inputs)
        return inputs

    def decode(self, inputs, condition, states, training=False):
        """Teacher forcing: logits ``[batch, T, ids]`` for decoder inputs ``[batch, T]``."""
        x = self.embed(inputs)
        x = ops.concatenate([x, ops.repeat(condition[:, None, :], ops.shape(x)[1], axis=1)], axis=-1)
        outputs, *_ = self.decoder(x, initial_state=states, training=training)
        return self.logits(outputs)

    def step(self, ids, condition, states):
        """One decoding step: ``(logits [batch, ids], new states)`` after the words ``ids`` [batch]."""
        x = ops.concatenate([self.embed(ids), condition], axis=-1)
        h, states = self.decoder.cell(x, list(states), training=False)
        return self.logits(h), list(states)

    def kl_weight(self):
        if not self.kl_anneal_steps:
            return 1.0
        return ops.minimum(1.0, self.kl_step / self.kl_anneal_steps)

    def bag_of_words_loss(self, condition, response):
        """Each response's ``sum over its words of -log p_bag(word | [c; z])`` (``<pad>`` left out), ``[batch]``."""
        log_p = ops.log_softmax(self.bag(condition), axis=-1)
        picked = ops.take_along_axis(log_p, ops.cast(response, "int32"), axis=1)
        return -ops.sum(ops.where(ops.not_equal(response, text.PAD_ID), picked, 0.0), axis=1)

    def forward(self, context, response, training=False):
        """``(logits, KL per response or None, bag-of-words loss per response or None)``, teacher-forced."""
        c = self.context(context, training)
        z, kl = self.latent_sample(c, response, training) if self.latent else (None, None)
        condition, states = self.start(c, z)
        bag = self.bag_of_words_loss(condition, response) if self.bow_loss else None
        return self.decode(self.decoder_inputs(response, training), condition, states, training), kl, bag

    def token_losses(self, context, response, training=False):
        """``(loss, rank)`` of each real response token (not ``<pad>``), and the KL per response.

        VHRED adds to each token its response's weighted KL divided by the
        response's length, so the tokens' sum is the (annealed) negative ELBO.
        Evaluation weighs the KL fully: the held-out loss is the bound itself.
        Training's KL is at least ``kl_free_nats`` (no gradient below it), and
        training adds ``bow_loss`` times the bag-of-words loss the same way.
        """
        logits, kl, bag = self.forward(context, response, training)
        nll, ranks = losses.token_losses(response, logits, training)
        real = ops.reshape(ops.not_equal(response, text.PAD_ID), (-1,))
        if kl is not None:
            weight, cost = 1.0, kl
            if training:
                weight, cost = self.kl_weight(), ops.maximum(kl, self.kl_free_nats)
                self.kl_step.assign_add(1.0)
                if bag is not None:
                    weight, cost = 1.0, weight * cost + self.bow_loss * bag
            lengths = ops.sum(ops.cast(ops.not_equal(response, text.PAD_ID), kl.dtype), axis=1)
            share = ops.repeat((weight * cost / lengths)[:, None], ops.shape(response)[1], axis=1)
            nll = nll + ops.reshape(share, (-1,))
        return tf.boolean_mask(nll, real), tf.boolean_mask(ranks, real), kl


def dialogue_model(cfg, vocab_size):
    """The model of a dialogue run, with its weights created."""
    return DialogueModel(vocab_size, cfg.arch, cfg.cell, cfg.embedding, cfg.hidden, cfg.word_drop,
                         cfg.kl_anneal_steps, cfg.kl_free_nats, cfg.bow_loss, cfg.seed,
                         cfg.posterior_reads).build_all(cfg.context_turns, cfg.max_turn_words + 1)

"""Turn a configuration (``--arch``, ``--objective`` and sizes) into a Keras model of next-word logits.

Two shapes of model, one per training objective:

* ``window`` (the notes'): ``ids[batch, window] -> logits[batch, vocab]`` for the
  word after the window; ``<pad>`` (id 0) is masked so short prompts can be
  left-padded.
* ``stream`` (the standard LM protocol): ``ids[batch, time], states ->
  logits[batch, time, vocab], states``; the final states feed the next chunk
  (truncated backpropagation through time).
"""
import math

import keras
import numpy as np
from keras import ops

from . import losses
from .config import ONEHOT, ONEHOT_ONLY
from .layers import (CELLS, GRU, LSTM, RNN, AdaptiveSoftmax, Attention, Decoder, Dropout, Encoder, Logits,
                     TimeMajor, padding_mask, project)
GATES = {"rnn": 1, "lstm": 4, "gru": 3}  # the input kernel of a cell is (inputs, GATES * units)
ADAPTIVE = "adaptive_softmax"  # the adaptive softmax layer's name in a model


def make_cell(arch, units, dropout=0.0, seed=None, peephole=False):
    assert arch in CELLS and (arch == "lstm" or not peephole), (arch, peephole)  # TrainConfig.validate's rules
    extra = {"peephole": True} if peephole else {}
    return CELLS[arch](units, dropout=dropout, seed=seed, **extra)


def recurrent_layer(arch, units, dropout=0.0, seed=None, peephole=False, return_sequences=True,
                    return_state=False, name=None, time_major=False):
    """Our LSTM or GRU layer (with its fused fast path) or our ``RNN`` around our cell.

    ``time_major``: sequences come and go as ``[time, batch, features]``
    (``keras.layers.RNN`` has no such option, so it is given transposed input).
    """
    cell = make_cell(arch, units, dropout, seed, peephole)  # validates the arguments too
    if arch == "lstm":
        return LSTM(units, peephole=peephole, dropout=dropout, seed=seed, name=name,
                    return_sequences=return_sequences, return_state=return_state,
                    time_major=time_major)
    if arch == "gru":
        return GRU(units, dropout=dropout, seed=seed, name=name, return_sequences=return_sequences,
                   return_state=return_state, time_major=time_major)
    rnn = RNN(cell, return_sequences=return_sequences, return_state=return_state, name=name)
    return TimeMajor(rnn) if time_major else rnn


def check_sizes(embedding, hidden, layers, dropout, onehot=False):
    """Sizes a model can be built with: what TrainConfig.validate lets through, asserted for direct callers."""
    assert onehot or embedding != ONEHOT, ONEHOT_ONLY
    assert embedding == ONEHOT or embedding > 0, embedding
    assert hidden > 0 and layers > 0 and 0 <= dropout < 1, (hidden, layers, dropout)


def build_model(vocab_size, arch="rnn", embedding=64, hidden=128, layers=1, dropout=0.0,
                seed=None, peephole=False, cutoffs=()):
    """The windowed model: embedding -> ``layers`` recurrent layers -> logits of the next word.

    The embedding replaces the notes' one-hot input by default: a learned
    vector per word, fed to the first layer's input kernel.  ``embedding="onehot"``
    is the notes' input itself, see :func:`one_hot_input`.  With ``cutoffs``
    the output is an adaptive softmax's exact log-probabilities.
    """
    check_sizes(embedding, hidden, layers, dropout, onehot=True)
    ids = keras.Input(shape=(None,), dtype="int32", name="ids")
    onehot = embedding == ONEHOT
    width = GATES[arch] * hidden if onehot else embedding
    x = keras.layers.Embedding(vocab_size, width, mask_zero=True, name="embedding",
                               embeddings_initializer="glorot_uniform" if onehot else "uniform")(ids)
    for i in range(layers):
        layer = recurrent_layer(arch, hidden, dropout, seed, peephole,
                                return_sequences=i < layers - 1, name=f"{arch}_{i + 1}")
        x = layer(x)
        if onehot and i == 0:
            one_hot_input(layer)
    if dropout:
        x = Dropout(dropout, seed=seed)(x)
    if cutoffs:
        logits = AdaptiveSoftmax(vocab_size, cutoffs, name=ADAPTIVE)(x)
    else:
        logits = keras.layers.Dense(vocab_size, name="logits")(x)
    return keras.Model(ids, logits, name=f"{arch}_lm")


def adaptive_parts(model):
    """``(features model, AdaptiveSoftmax layer)`` of a window model built with cutoffs: training reads both."""
    head = model.get_layer(ADAPTIVE)
    return keras.Model(model.input, head.input), head


def one_hot_input(layer):
    """Make ``layer``, already reading the embedding, compute the notes' one-hot input.

    A one-hot vector times the input kernel ``W`` (vocabulary x gates*units) is
    row ``id`` of ``W``: the embedding of width gates*units *is* ``W`` (initialised
    as the cell would initialise it), and the layer's own input kernel is fixed
    to the identity.  The maths and the learned weights are the notes', and
    neither the one-hot vectors nor their product with ``W`` are ever built: a
    step costs a gates*units square product instead of a vocabulary-wide one.
    (Input dropout then drops the rows of ``W`` read, not one-hot entries.)
    """
    kernel = layer.cell.kernel
    kernel.assign(np.eye(*kernel.shape, dtype=kernel.dtype))
    kernel.trainable = False


@keras.saving.register_keras_serializable(package="lm_app")
class TiedOutput(keras.layers.Layer):
    """Logits from the embedding matrix itself (Press & Wolf 2016; Inan et al. 2017).

    Sharing the input and output word vectors halves the parameters of a small
    model and usually lowers its perplexity.
    """

    def __init__(self, embedding_layer, **kwargs):
        super().__init__(**kwargs)
        self.embedding_layer = embedding_layer

    def build(self, input_shape):
        self.bias = self.add_weight(shape=(self.embedding_layer.input_dim,), name="bias",
                                    initializer="zeros")

    def affine(self):
        """``(kernel, bias)`` of ``logits = x kernel + bias``."""
        return ops.transpose(self.embedding_layer.embeddings), self.bias

    def call(self, x, training=False):
        return project(x, *self.affine(), training)


class StreamLM(keras.Model):
    """The standard-protocol model (as PyTorch's ``word_language_model``): every position predicts its next token.

    Dropout on the embeddings, between layers and before the softmax, as in
    Zaremba et al. (2014).  With ``cutoffs`` the softmax is adaptive
    (:class:`lm_app.layers.AdaptiveSoftmax`) and the model's "logits" are the
    exact log-probabilities.
    """

    def __init__(self, vocab_size, arch="lstm", embedding=200, hidden=200, layers=2, dropout=0.2,
                 tied=False, seed=None, peephole=False, cutoffs=(), **kwargs):
        super().__init__(**kwargs)
        check_sizes(embedding, hidden, layers, dropout)
        assert not tied or embedding == hidden, (embedding, hidden)
        assert not (tied and cutoffs), "TrainConfig.validate refuses --tied with --softmax adaptive"
        self.arch, self.hidden, self.n_layers = arch, hidden, layers
        self.embed = keras.layers.Embedding(vocab_size, embedding, name="embedding")
        self.drop = Dropout(dropout, seed=seed)
        self.rnns = [recurrent_layer(arch, hidden, 0.0, seed, peephole, return_sequences=True,
                                     return_state=True, name=f"{arch}_{i + 1}", time_major=True)
                     for i in range(layers)]
        if cutoffs:
            self.head = AdaptiveSoftmax(vocab_size, cutoffs, name=ADAPTIVE)
        else:
            self.head = TiedOutput(self.embed, name="logits") if tied else Logits(vocab_size, name="logits")

    def recipe_init(self, seed=None):
        """Give the (built) model PyTorch ``word_language_model``'s initial weights.

        The embedding and the softmax kernel uniform in +-0.1 and the softmax
        bias zero, as the recipe sets them; every recurrent weight uniform in
        +-1/sqrt(hidden), PyTorch's default, and each recurrent bias the sum
        of two such draws (PyTorch's recurrent layers keep two bias vectors
        that always add up), except the GRU's, whose two rows are PyTorch's
        two vectors (the reset gate scales the second).  Peepholes stay zero.  Against Keras' defaults
        (Glorot, orthogonal, forget bias 1) this mattered on the recipe: over
        seeds 1111, 1112, 1113, 2222 and 3333, 4 epochs on Shakespeare
        reached a validation perplexity of 96-98 instead of 97-113, and a
        test perplexity of 110-117 instead of 115-137.
        """
        rng = np.random.default_rng(seed)

        def uniform(variable, bound):
            return rng.uniform(-bound, bound, variable.shape).astype(variable.dtype)

        self.embed.embeddings.assign(uniform(self.embed.embeddings, 0.1))
        if isinstance(self.head, AdaptiveSoftmax):
            # The head as the recipe's softmax; the clusters' layers as PyTorch's nn.Linear starts them.
            self.head.head_kernel.assign(uniform(self.head.head_kernel, 0.1))
            for weight in self.head.trainable_weights:
                if weight.name.endswith("bias"):
                    weight.assign(np.zeros(weight.shape, weight.dtype))
                elif weight is not self.head.head_kernel:
                    weight.assign(uniform(weight, 1 / math.sqrt(weight.shape[0])))
        else:
            if isinstance(self.head, Logits):  # a tied head reads the embedding
                self.head.kernel.assign(uniform(self.head.kernel, 0.1))
            self.head.bias.assign(np.zeros(self.head.bias.shape, self.head.bias.dtype))
        bound = 1 / math.sqrt(self.hidden)
        for layer in self.rnns:
            for weight in layer.trainable_weights:
                if weight.name.startswith("peephole"):
                    continue
                value = uniform(weight, bound)
                summed = weight.name == "bias" and len(weight.shape) == 1
                weight.assign(value + uniform(weight, bound) if summed else value)

    @property
    def states_per_layer(self):
        return 2 if self.arch == "lstm" else 1

    def zero_states(self, batch):
        return [[ops.zeros((batch, self.hidden)) for _ in range(self.states_per_layer)]
                for _ in range(self.n_layers)]

    def call(self, ids, states=None, training=False):
        """``ids[batch, time]`` -> ``logits[batch, time, vocab]`` and the final states."""
        x, states = self.features(ops.transpose(ids), states, training)
        return ops.transpose(self.head(x, training=training), [1, 0, 2]), states

    def token_losses(self, ids, labels, states=None, training=False):
        """Time-major ``ids`` and ``labels[time, batch]`` -> ``(losses, ranks)`` of every token, and the states.

        The order the recurrent loops run in: no activation is transposed (a
        measurable share of the recipe's step), and the softmax layer is fused
        with the loss (:mod:`lm_app.losses`).
        """
        x, states = self.features(ids, states, training)
        if isinstance(self.head, AdaptiveSoftmax):
            return self.head.token_losses(x, labels, training), states
        return losses.projected_token_losses(x, *self.head.affine(), labels, training), states

    def features(self, ids, states=None, training=False):
        """``ids[time, batch]`` -> what the softmax layer reads, ``[time, batch, hidden]``, and the states."""
        x = self.drop(self.embed(ids), training=training, time_major=True)
        states = states or [None] * self.n_layers
        new_states = []
        for rnn, state in zip(self.rnns, states):
            x, *state = rnn(x, initial_state=state, training=training)
            new_states.append(state)
            x = self.drop(x, training=training, time_major=True)
        return x, new_states


class AttentionLM(keras.Model):
    """``--arch attention``: the window's last state attends over all its states.

        s_1..s_T = RNN(embed(x_1..x_T)),   c, a = attention(s_T, s_1..s_T),   logits = [s_T; c] W + b

    A plain recurrent model must squeeze the whole window into ``s_T``; here the
    prediction can reach back to any earlier word directly (``a`` says which).
    Padded positions get exactly zero weight.
    """

    def __init__(self, vocab_size, arch="gru", embedding=64, hidden=128, score="general",
                 dropout=0.0, seed=None, peephole=False, **kwargs):
        super().__init__(**kwargs)
        check_sizes(embedding, hidden, 1, dropout)
        self.embed = keras.layers.Embedding(vocab_size, embedding, mask_zero=True, name="embedding")
        self.rnn = recurrent_layer(arch, hidden, dropout, seed, peephole, return_sequences=True,
                                   return_state=True, name=f"{arch}_1")
        self.attention = Attention(score, name="attention")
        self.drop = Dropout(dropout, seed=seed)
        self.head = keras.layers.Dense(vocab_size, name="logits")

    def attend(self, ids, training=False):
        """Logits of the next word and the attention weights over the window."""
        mask = ops.not_equal(ids, 0)
        states, last, *_ = self.rnn(self.embed(ids), mask=mask, training=training)
        context, weights = self.attention(last, states, mask=mask)
        features = self.drop(ops.concatenate([last, context], axis=-1), training=training)
        return self.head(features), weights

    def call(self, ids, training=False):
        return self.attend(ids, training=training)[0]


class Seq2SeqLM(keras.Model):
    """``--arch seq2seq``: an encoder reads the window, an attentive decoder writes the next words.

    Trained with teacher forcing: the decoder's first input is the window's
    last word, then each true next word.  ``Decoder.step`` decodes the same way
    one word at a time, feeding back its own choice.
    """

    def __init__(self, vocab_size, arch="gru", embedding=64, hidden=128, score="general", **kwargs):
        super().__init__(**kwargs)
        check_sizes(embedding, hidden, 1, 0.0)
        assert arch in CELLS, arch
        self.encoder = Encoder(vocab_size, embedding, hidden, cell=arch, name="encoder")
        self.decoder = Decoder(vocab_size, embedding, hidden, cell=arch, score=score, name="decoder")

    def decoder_inputs(self, ids, targets):
        """``[last context word, y_1 .. y_{N-1}]``: what teacher forcing feeds the decoder."""
        return ops.concatenate([ids[:, -1:], targets[:, :-1]], axis=1)

    def encode(self, ids, training=False):
        outputs, states = self.encoder(ids, training=training)
        return outputs, states, padding_mask(ids)

    def call(self, inputs, training=False):
        ids, decoder_in = inputs
        outputs, states, mask = self.encode(ids, training)
        logits, _ = self.decoder(decoder_in, states, outputs, mask, training=training)
        return logits


def stream_model(cfg, vocab_size):
    """The model of a stream run, with its weights created."""
    model = StreamLM(vocab_size, cfg.arch, cfg.embedding, cfg.hidden, cfg.layers, cfg.dropout,
                     cfg.tied, cfg.seed, cfg.peephole, softmax_cutoffs(cfg))
    model(ops.zeros((1, 1), dtype="int32"))
    model.recipe_init(cfg.seed)
    return model


def model_from_config(cfg, vocab_size):
    """The model a run's settings describe, by objective and architecture."""
    if cfg.objective == "dialogue":
        from .dialogue.models import dialogue_model  # it builds on this module

        return dialogue_model(cfg, vocab_size)
    return (stream_model if cfg.objective == "stream" else window_model)(cfg, vocab_size)


def window_model(cfg, vocab_size):
    """The model of a windowed run, by ``cfg.arch``."""
    if cfg.arch == "attention":
        model = AttentionLM(vocab_size, cfg.cell, cfg.embedding, cfg.hidden, cfg.score, cfg.dropout,
                            cfg.seed, cfg.peephole)
        model(ops.zeros((1, cfg.window), dtype="int32"))
    elif cfg.arch == "seq2seq":
        model = Seq2SeqLM(vocab_size, cfg.cell, cfg.embedding, cfg.hidden, cfg.score)
        model((ops.zeros((1, cfg.window), dtype="int32"), ops.zeros((1, cfg.target_len), dtype="int32")))
    else:
        model = build_model(vocab_size, cfg.arch, cfg.embedding, cfg.hidden, cfg.layers, cfg.dropout,
                            cfg.seed, cfg.peephole, softmax_cutoffs(cfg))
    return model


def softmax_cutoffs(cfg):
    """The adaptive softmax's cutoffs, or () for the full softmax."""
    return cfg.cutoffs if cfg.softmax == "adaptive" else ()

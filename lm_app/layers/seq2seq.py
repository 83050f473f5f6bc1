"""Encoder-decoder with attention (Sutskever et al. 2014; Bahdanau et al. 2015; Luong et al. 2015).

    encoder:  e_1..e_S, s_0 = RNN(embed(x_1..x_S))        (bidirectional: [fwd; bwd])
    decoder:  h_t, s_t = cell([embed(y_{t-1}); c_{t-1}], s_{t-1})      input feeding
              c_t, a_t = attention(h_t, e_1..e_S)                      a_t over real x only
              logits_t = [h_t; c_t] W_o + b_o

The encoder reads the source once; the decoder writes the target one word at
a time, starting from the encoder's final state.  Attention spares that final
state from carrying the whole source: at each step the new state ``h_t`` looks
back over every encoder output and takes their weighted average ``c_t``.
Feeding ``c_{t-1}`` back into the next step's input (Luong's input feeding;
Luong feeds ``tanh([c; h] W_c)``, we feed the context itself) tells the decoder
what it attended to last, e.g. "the previous word came from source position
3", which is all a reversal or an alignment needs.

With a bidirectional encoder each final state is the concatenation of the
two directions' (2*units), so a ``Dense`` bridge per state brings it back to
the decoder's ``units``: ``tanh`` for ``h`` (the cells' ``h`` lies in (-1, 1))
and linear for an LSTM's ``c`` (unbounded).  A one-directional encoder hands
its final states over as they are, so the decoder must use the same kind of
cell and the same ``units``.

Training uses teacher forcing: the decoder is fed the true previous word.
``Decoder.step`` is one step of the very same computation, with the very same
weights, so that greedy, sampling or beam decoding (which feed back their own
choice) can be written around it, e.g. in a ``tf.while_loop``.  The full call
is a ``tf.scan`` over that step, so the target length may vary and the layer
exports to a SavedModel.
"""
import keras
import tensorflow as tf
from keras import ops

from .attention import Attention
from .bidirectional import bidirectional as make_bidirectional
from .cells import CELLS
from .dropout import RNN

PAD = 0


def _cell_class(cell):
    if cell not in CELLS:
        raise ValueError(f"cell must be one of {', '.join(sorted(CELLS))}, got {cell!r}")
    return CELLS[cell]


def _check_positive(sizes):
    for name, value in sizes.items():
        if value <= 0:
            raise ValueError(f"{name} must be positive, got {value}")


def padding_mask(ids):
    """True on the real tokens of ``ids``, False on ``<pad>`` (id 0)."""
    return ops.not_equal(ids, PAD)


class _EmbeddedCell(keras.layers.Layer):
    """What the encoder and the decoder share: word ids, embedded, read by a cell of ``units``."""

    def __init__(self, vocab_size, embedding, units, cell, **kwargs):
        _cell_class(cell)
        _check_positive({"vocab_size": vocab_size, "embedding": embedding, "units": units})
        super().__init__(**kwargs)
        self.vocab_size = vocab_size
        self.embedding = embedding
        self.units = units
        self.cell = cell
        self.embed = keras.layers.Embedding(vocab_size, embedding, name="embedding")

    def get_config(self):
        return {
            **super().get_config(),
            "vocab_size": self.vocab_size,
            "embedding": self.embedding,
            "units": self.units,
            "cell": self.cell,
        }


@keras.saving.register_keras_serializable(package="lm_app")
class Encoder(_EmbeddedCell):
    """Embeds and reads a padded batch of source ids.

    Call: ``encoder(ids) -> (outputs, states)`` with ``ids`` (batch, T) int,
    0 = ``<pad>`` (masked: padding neither moves the state nor, through
    ``padding_mask(ids)``, gets attention); ``outputs`` (batch, T, units_out)
    with ``units_out`` = 2*units if bidirectional, else units; ``states`` the
    list of initial states for a ``Decoder`` of ``units`` (``[h, c]`` for an
    LSTM, ``[h]`` otherwise).

    Args:
        vocab_size: number of source ids, ``<pad>`` included.
        embedding: size of the word vectors.
        units: size of each direction's state, and of the decoder's.
        cell: ``"lstm"``, ``"gru"`` or ``"rnn"``.
        bidirectional: read both ways; outputs are ``[forward; backward]``
            and the final states go through the ``bridge_*`` Dense layers.
    """

    def __init__(self, vocab_size, embedding, units, cell="lstm", bidirectional=False, **kwargs):
        super().__init__(vocab_size, embedding, units, cell, **kwargs)
        cell_class = CELLS[cell]
        self.bidirectional = bool(bidirectional)
        self.units_out = 2 * units if self.bidirectional else units
        if self.bidirectional:
            self.rnn = make_bidirectional(lambda: cell_class(units), return_sequences=True,
                                     return_state=True)
            n_states = 2 if cell == "lstm" else 1
            self.bridges = [keras.layers.Dense(units, activation="tanh" if i == 0 else None,
                                               name="bridge_h" if i == 0 else "bridge_c")
                            for i in range(n_states)]
        else:
            self.rnn = RNN(cell_class(units), return_sequences=True, return_state=True)
            self.bridges = []

    def build(self, ids_shape):
        self.embed.build(ids_shape)
        self.rnn.build((*ids_shape, self.embedding))
        for bridge in self.bridges:
            bridge.build((None, 2 * self.units))

    def call(self, ids, training=False):
        x = self.embed(ids)
        outputs, *states = self.rnn(x, mask=padding_mask(ids), training=training)
        if self.bidirectional:
            n = len(self.bridges)  # forward states first, then backward ones
            states = [bridge(ops.concatenate([forward, backward], axis=-1))
                      for bridge, forward, backward in zip(self.bridges, states[:n], states[n:])]
        return outputs, states

    def compute_mask(self, *args, **kwargs):
        return None  # the caller builds the mask from the ids: ``padding_mask(ids)``

    def get_config(self):
        return {**super().get_config(), "bidirectional": self.bidirectional}


@keras.saving.register_keras_serializable(package="lm_app")
class Decoder(_EmbeddedCell):
    """An attentive decoder with input feeding, run with teacher forcing or step by step.

    Call: ``decoder(target_ids, initial_states, encoder_outputs, encoder_mask=None,
    initial_context=None) -> (logits, weights)`` with ``target_ids`` (batch, Tt)
    the decoder's inputs (``<s> y_1 .. y_{Tt-1}``), ``initial_states`` as the
    ``Encoder`` returns them, ``encoder_outputs`` (batch, Tk, k_dim), the
    encoder's mask (batch, Tk) and the first fed-back context (default
    zeros); ``logits`` (batch, Tt, vocab) and attention ``weights``
    (batch, Tt, Tk).  ``step`` is one column of that.

    Args:
        vocab_size: number of target ids.
        embedding: size of the word vectors.
        units: size of the cell's state (the encoder's ``units``).
        cell: ``"lstm"``, ``"gru"`` or ``"rnn"``, the encoder's kind.
        score: the attention score, ``"general"``, ``"additive"`` or ``"dot"``
            (``dot`` needs ``units`` = the encoder's ``units_out``).
    """

    def __init__(self, vocab_size, embedding, units, cell="lstm", score="general", **kwargs):
        super().__init__(vocab_size, embedding, units, cell, **kwargs)
        self.score = score
        self.rnn_cell = CELLS[cell](units, name="cell")
        self.attention = Attention(score, name="attention")
        self.output_layer = keras.layers.Dense(vocab_size, name="logits")

    def build(self, target_ids_shape, initial_states_shape, encoder_outputs_shape):
        context_dim = encoder_outputs_shape[-1]
        self.embed.build(target_ids_shape)
        self.rnn_cell.build((None, self.embedding + context_dim))
        self.attention.build((None, self.units), encoder_outputs_shape)
        self.output_layer.build((None, self.units + context_dim))

    def initial_context(self, encoder_outputs):
        """The context fed to the first step: zeros (batch, k_dim), nothing attended yet."""
        return ops.zeros_like(encoder_outputs[:, 0, :])

    def _step(self, x_t, states, context_prev, encoder_outputs, encoder_mask, training=False):
        """One step from the embedded input ``x_t`` (batch, embedding)."""
        h, states = self.rnn_cell(ops.concatenate([x_t, context_prev], axis=-1), list(states),
                                  training=training)
        context, weights = self.attention(h, encoder_outputs, mask=encoder_mask)
        logits = self.output_layer(ops.concatenate([h, context], axis=-1))
        return logits, list(states), context, weights

    def step(self, ids_t, states, context_prev, encoder_outputs, encoder_mask=None,
             training=False):
        """One decoding step: ``(logits (batch, vocab), new_states, context, weights (batch, Tk))``.

        ``ids_t`` (batch,) are the previous words (``<s>`` first), ``states``
        and ``context_prev`` what the previous step returned (the encoder's
        states and ``initial_context`` first).
        """
        if not self.built:  # as a call would build it, for a decoder only ever stepped
            self.build(target_ids_shape=(ids_t.shape[0], None), initial_states_shape=None,
                       encoder_outputs_shape=tuple(encoder_outputs.shape))
        return self._step(self.embed(ids_t), states, context_prev, encoder_outputs,
                          encoder_mask, training=training)

    def call(self, target_ids, initial_states, encoder_outputs, encoder_mask=None,
             initial_context=None, training=False):
        if initial_context is None:
            initial_context = self.initial_context(encoder_outputs)
        states = list(initial_states)
        x = ops.transpose(self.embed(target_ids), (1, 0, 2))  # time major, for the scan
        batch = ops.shape(target_ids)[0]
        n_keys = ops.shape(encoder_outputs)[1]

        def body(carry, x_t):
            states, context = carry[0], carry[1]
            logits, states, context, weights = self._step(
                x_t, states, context, encoder_outputs, encoder_mask, training=training)
            return states, context, logits, weights

        start = (states, initial_context,
                 ops.zeros((batch, self.vocab_size), dtype=self.compute_dtype),
                 ops.zeros((batch, n_keys), dtype=self.compute_dtype))
        _, _, logits, weights = tf.scan(body, x, initializer=start)
        return ops.transpose(logits, (1, 0, 2)), ops.transpose(weights, (1, 0, 2))

    def compute_mask(self, *args, **kwargs):
        return None

    def get_config(self):
        return {**super().get_config(), "score": self.score}

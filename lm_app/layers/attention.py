"""Attention: a learned relevance score between two vectors, turned into weights.

A query ``q`` (e.g. the decoder's state) is compared with every key ``k_j``
(e.g. the encoder's outputs); the scores become weights by a softmax over the
keys, and the context is the weighted average of the values (the keys unless
given):

    additive (Bahdanau et al. 2015):  score(q, k_j) = v . tanh(q W_1 + k_j W_2)
    dot      (Luong et al. 2015):     score(q, k_j) = q . k_j
    general  (Luong et al. 2015):     score(q, k_j) = q W k_j
    a_j = exp(score_j) / sum_i exp(score_i)          over the real keys only
    context = sum_j a_j v_j

Why: a fixed-size final state has to carry the whole source; attention lets
each output step look back at every source position and pick what it needs,
and since the weights are a softmax the choice stays differentiable.  The
additive score is a one-hidden-layer network, so it can compare vectors of any
two sizes; ``dot`` has no weights at all but needs ``q`` and ``k`` of the same
size; ``general`` puts a matrix between them, so it learns which dimensions
should match (any sizes, one matmul).

Padding must get no attention at all: masked scores are replaced by a large
negative before the softmax (so the real keys share the mass), then the
weights are multiplied by the mask and renormalised, so that padded keys get
exactly 0.0, not ``exp(-1e9)``, and a row with no real key at all gets all-zero
weights and a zero context instead of a uniform average over padding or NaN.

Weights: ``query_kernel`` (q_dim, units), ``key_kernel`` (k_dim, units) and
``score_vector`` (units,) for additive; ``kernel`` (q_dim, k_dim) for general;
none for dot.
"""
import keras
from keras import ops

SCORES = ("additive", "dot", "general")


@keras.saving.register_keras_serializable(package="lm_app")
class Attention(keras.layers.Layer):
    """Attention of one query, or of each of several, over a set of keys.

    Call: ``attention(query, keys, values=None, mask=None) -> (context, weights)``
    with ``query`` (batch, q_dim) or (batch, Tq, q_dim), ``keys`` (batch, Tk,
    k_dim), ``values`` (batch, Tk, v_dim) (default: the keys) and ``mask``
    (batch, Tk), True on the real keys.  ``context`` is (batch, [Tq,] v_dim)
    and ``weights`` (batch, [Tq,] Tk), with the query's rank.

    Args:
        score: ``"additive"``, ``"dot"`` or ``"general"`` (see the module).
        units: size of the additive score's hidden layer (default: k_dim);
            additive only.
    """

    def __init__(self, score="additive", units=None, **kwargs):
        if score not in SCORES:
            raise ValueError(f"score must be one of {', '.join(SCORES)}, got {score!r}")
        if units is not None:
            if score != "additive":
                raise ValueError(f"units is only for the additive score, not {score!r}")
            if units <= 0:
                raise ValueError(f"units must be positive, got {units}")
        super().__init__(**kwargs)
        self.score = score
        self.units = units

    def build(self, query_shape, keys_shape, values_shape=None):
        q_dim, k_dim = query_shape[-1], keys_shape[-1]
        if len(query_shape) not in (2, 3):
            raise ValueError(
                f"query must be (batch, q_dim) or (batch, Tq, q_dim), got {query_shape}")
        if len(keys_shape) != 3:
            raise ValueError(f"keys must be (batch, Tk, k_dim), got {keys_shape}")
        if self.score == "additive":
            units = self.units or k_dim
            self.query_kernel = self.add_weight(
                shape=(q_dim, units), name="query_kernel", initializer="glorot_uniform")
            self.key_kernel = self.add_weight(
                shape=(k_dim, units), name="key_kernel", initializer="glorot_uniform")
            self.score_vector = self.add_weight(
                shape=(units,), name="score_vector", initializer="glorot_uniform")
        elif self.score == "general":
            self.kernel = self.add_weight(
                shape=(q_dim, k_dim), name="kernel", initializer="glorot_uniform")
        elif q_dim != k_dim:
            raise ValueError(f"the dot score needs queries and keys of the same size, got "
                             f"q_dim={q_dim} and k_dim={k_dim}; use score='general' or "
                             f"'additive' to compare vectors of different sizes")

    def scores(self, query, keys):
        """Raw scores (batch, Tq, Tk) of queries (batch, Tq, q_dim) against keys, no mask."""
        if self.score == "additive":
            q = ops.matmul(query, self.query_kernel)[:, :, None, :]  # (batch, Tq, 1, units)
            k = ops.matmul(keys, self.key_kernel)[:, None, :, :]  # (batch, 1, Tk, units)
            return ops.tensordot(ops.tanh(q + k), self.score_vector, axes=1)
        if self.score == "general":
            query = ops.matmul(query, self.kernel)
        return ops.matmul(query, ops.transpose(keys, (0, 2, 1)))

    def call(self, query, keys, values=None, mask=None):
        single = len(query.shape) == 2
        if single:
            query = query[:, None, :]
        if values is None:
            values = keys
        scores = self.scores(query, keys)
        if mask is None:
            weights = ops.softmax(scores, axis=-1)
        else:
            mask = ops.cast(mask, "bool")[:, None, :]  # (batch, 1, Tk), for every query
            # Representable in float16 too, where -1e9 would be -inf and an all-padding row NaN.
            large = 6.0e4 if scores.dtype == "float16" else 1.0e9
            weights = ops.softmax(ops.where(mask, scores, -large), axis=-1)
            weights = weights * ops.cast(mask, weights.dtype)  # padding: exactly 0
            total = ops.sum(weights, axis=-1, keepdims=True)
            # A row with no real key sums to 0; dividing by 1 there keeps it all zeros.
            weights = weights / ops.where(total > 0, total, ops.ones_like(total))
        context = ops.matmul(weights, values)
        if single:
            return context[:, 0], weights[:, 0]
        return context, weights

    def compute_mask(self, *args, **kwargs):
        # The keys' padding is used up here: the outputs carry no mask.
        return None

    def get_config(self):
        return {**super().get_config(), "score": self.score, "units": self.units}

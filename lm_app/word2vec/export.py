"""The word vectors as a SavedModel: nearest words, analogies and vectors in plain TensorFlow.

Everything is inside: the words (an asset), the vectors and their unit-length
copies (variables), and the rule that turns a typed word into a vocabulary
word (core string ops, as :func:`lm_app.text.tf_tokenize` applies it).  A
process that imports only ``tensorflow``, ``saved_model_cli`` or TensorFlow
Serving can call its signatures:

* ``vector(words: string[None])`` -> ``vectors`` float32 ``[None, dim]``,
  ``known`` bool ``[None]``;
* ``similar(words: string[None], k: int32)`` -> ``words`` and ``scores``
  (cosine) ``[None, k]``, the query word itself left out;
* ``analogy(a, b, c: string[None], k: int32)`` -> ``words`` and ``scores``
  ``[None, k]`` answering a:b = c:? by 3CosAdd (the words nearest
  ``b - a + c`` over unit vectors), the three query words left out.

Each also returns ``query`` (the normalised words) and ``known``.  A row with
an unknown word has ``known`` false, a zero vector, empty words and zero
scores.  ``k`` is clipped to ``[0, count - 1]`` (``count - 3`` for analogies).
"""
import numpy as np
import tensorflow as tf

from .. import text
from .vectors import WORDS_RULE, unit_vectors

WORDS = tf.TensorSpec([None], tf.string, name="words")
K = tf.TensorSpec([], tf.int32, name="k")


class WordVectorsModule(tf.Module):
    def __init__(self, words_file, vectors, rule):
        super().__init__()
        self.rule = rule
        self.count = len(vectors)
        self.vectors = tf.Variable(vectors, trainable=False, name="vectors")
        self.unit = tf.Variable(unit_vectors(vectors), trainable=False, name="unit_vectors")
        self.words_file = tf.saved_model.Asset(str(words_file))
        line, whole = tf.lookup.TextFileIndex.LINE_NUMBER, tf.lookup.TextFileIndex.WHOLE_LINE
        self.word_to_id = tf.lookup.StaticHashTable(
            tf.lookup.TextFileInitializer(self.words_file, tf.string, whole, tf.int64, line), default_value=-1)
        self.id_to_word = tf.lookup.StaticHashTable(
            tf.lookup.TextFileInitializer(self.words_file, tf.int64, line, tf.string, whole), default_value="")

    def normalised(self, words):
        """What :func:`lm_app.word2vec.vectors.normalise_query` makes of each word."""
        if self.rule != WORDS_RULE:
            return words
        return tf.strings.reduce_join(text.tf_tokenize(words), axis=1, separator=" ")

    def lookup(self, words):
        """``(query, ids, known)``: unknown words get id 0, to be masked by ``known``."""
        query = self.normalised(words)
        ids = self.word_to_id.lookup(query)
        return query, tf.maximum(ids, 0), ids >= 0

    def nearest(self, targets, exclude, known, k, reserved):
        """The ``k`` words nearest each target direction (cosine), never one of ``exclude`` ``[batch, n]``."""
        targets = tf.math.l2_normalize(targets, axis=1)
        scores = tf.matmul(targets, self.unit, transpose_b=True)
        hidden = tf.reduce_sum(tf.one_hot(exclude, self.count), axis=1) > 0
        scores = tf.where(hidden, tf.constant(-np.inf, tf.float32), scores)
        k = tf.clip_by_value(k, 0, max(self.count - reserved, 0))
        top, ids = tf.math.top_k(scores, k)
        known = known[:, None]
        return {"words": tf.where(known, self.id_to_word.lookup(tf.cast(ids, tf.int64)), ""),
                "scores": tf.where(known, top, 0.0)}

    @tf.function(input_signature=[WORDS], autograph=False)
    def vector(self, words):
        query, ids, known = self.lookup(words)
        vectors = tf.where(known[:, None], tf.gather(self.vectors, ids), 0.0)
        return {"vectors": vectors, "known": known, "query": query}

    @tf.function(input_signature=[WORDS, K], autograph=False)
    def similar(self, words, k):
        query, ids, known = self.lookup(words)
        out = self.nearest(tf.gather(self.unit, ids), ids[:, None], known, k, reserved=1)
        return dict(out, known=known, query=query)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=n) for n in "abc"] + [K], autograph=False)
    def analogy(self, a, b, c, k):
        (qa, a, ka), (qb, b, kb), (qc, c, kc) = self.lookup(a), self.lookup(b), self.lookup(c)
        known = ka & kb & kc
        target = tf.gather(self.unit, b) - tf.gather(self.unit, a) + tf.gather(self.unit, c)
        out = self.nearest(target, tf.stack([a, b, c], axis=1), known, k, reserved=3)
        return dict(out, known=known, query=tf.stack([qa, qb, qc], axis=1))


def export_saved_model(folder, words_file, vectors, rule):
    """Write the SavedModel into ``folder`` (its ``saved_model.pb``, ``variables/`` and ``assets/``)."""
    module = WordVectorsModule(words_file, vectors, rule)
    signatures = {"vector": module.vector, "similar": module.similar, "analogy": module.analogy}
    tf.saved_model.save(module, str(folder), signatures=signatures)

"""The two tables of word2vec as a Keras layer, the negative-sampling loss, and the portable training step.

``syn0`` holds the input vectors (the ones exported: a word's embedding) and
``syn1neg`` the output vectors that score a (context, word) pair: as in gensim,
``syn0`` starts uniform in ``[-0.5, 0.5) / dim`` and ``syn1neg`` at zero.

The native kernel (``lm_app/native``) updates both tables in place, one pair at
a time.  Without a compiler (or with ``LM_APP_NATIVE=0``) :class:`PortableStep`
runs the same algorithm with TensorFlow ops: subsampling, dynamic windows and
noise words from :mod:`.sampling`'s tables, the gradient of :func:`ns_loss`
applied with scatter updates at the decayed rate.  It updates a chunk of centre
words at once from the same weights (a mini-batch, where the kernel updates
after every pair), and draws with TensorFlow's generator, not the LCG: slower,
and not the kernel's numbers, but the same model trained the same way.
"""
import keras
import tensorflow as tf

CHUNK = 256  # most centre words per update of the portable step


def chunk_size(vocab_size):
    """Centre words per portable update: few enough that a row rarely gets many summed updates at once.

    One update adds up the gradients of all its pairs from the same weights;
    with a tiny vocabulary every row would get dozens at the full rate and
    training diverges, so the chunk shrinks with the vocabulary.
    """
    return int(min(CHUNK, max(4, vocab_size // 16)))


class Word2VecTables(keras.layers.Layer):
    """``syn0`` (input vectors) and ``syn1neg`` (output vectors), ``[vocab, dim]`` each."""

    def __init__(self, vocab_size, dim, seed=1, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size, self.dim, self.seed = vocab_size, dim, seed
        self.syn0 = self.add_weight(
            name="syn0", shape=(vocab_size, dim), trainable=False,
            initializer=keras.initializers.RandomUniform(-0.5 / dim, 0.5 / dim, seed=seed))
        self.syn1neg = self.add_weight(name="syn1neg", shape=(vocab_size, dim), trainable=False,
                                       initializer="zeros")

    def call(self, ids):
        return tf.gather(self.syn0, ids)

    def variables_by_name(self):
        """The tables keyed by a fixed name, for ``tf.train.Checkpoint``."""
        return {"syn0": self.syn0.value, "syn1neg": self.syn1neg.value}


def ns_loss(h, out, labels, weights):
    """Negative-sampling loss: ``-sum w (y log s(h.o) + (1 - y) log s(-h.o))``.

    ``h`` [P, dim]: what predicts (a context word's vector, or the mean of the
    context's); ``out`` [P, K, dim]: the output vectors of the true word
    (label 1) and the noise words (label 0); ``weights`` [P, K] masks pairs out.
    Its gradient times ``-alpha`` is word2vec's update of both sides.
    """
    logits = tf.einsum("pd,pkd->pk", h, out)
    per_pair = labels * tf.math.log_sigmoid(logits) + (1 - labels) * tf.math.log_sigmoid(-logits)
    return -tf.reduce_sum(weights * per_pair)


def context_windows(sentence, window, seed):
    """Each position's context: ``(positions [n, 2 window], valid [n, 2 window])``, the dynamic window.

    ``sentence`` [n] numbers each position's sentence; a centre word draws
    ``b`` in ``[0, window)`` and sees ``window - b`` words each side, never
    across its sentence's ends.
    """
    n = tf.shape(sentence)[0]
    reduced = window - tf.random.stateless_uniform([n], seed, 0, window, tf.int32)
    offsets = tf.constant([o for o in range(-window, window + 1) if o], tf.int32)
    context = tf.range(n)[:, None] + offsets
    inside = (context >= 0) & (context < n)
    context = tf.clip_by_value(context, 0, tf.maximum(n - 1, 0))
    valid = inside & (tf.gather(sentence, context) == sentence[:, None]) & (tf.abs(offsets)[None] <= reduced[:, None])
    return context, valid


class PortableStep:
    """Trains one batch of sentences with TensorFlow ops (the path without the native kernel)."""

    def __init__(self, tables, keep, cum_table, cbow, window, negative):
        self.tables, self.cbow, self.window, self.negative = tables, cbow, window, negative
        self.keep = tf.constant(keep, tf.float32)
        self.cum = tf.constant(cum_table, tf.int64)
        self.train = tf.function(self._train, reduce_retracing=True)

    def __call__(self, ids, splits, alpha, seed):
        return int(self.train(tf.constant(ids, tf.int32), tf.constant(splits, tf.int64),
                              tf.constant(alpha, tf.float32), tf.constant(seed, tf.int64)))

    def _train(self, ids, splits, alpha, seed):
        n_raw = tf.shape(ids, out_type=tf.int64)[0]
        sentence = tf.searchsorted(splits[1:], tf.range(n_raw), side="right")
        rate = alpha[0] + (alpha[1] - alpha[0]) * tf.cast(tf.gather(splits, sentence), tf.float32) \
            / tf.cast(tf.maximum(n_raw, 1), tf.float32)
        kept = tf.random.stateless_uniform([n_raw], seed) < tf.gather(self.keep, ids)
        ids, sentence, rate = (tf.boolean_mask(x, kept) for x in (ids, sentence, rate))
        n = tf.shape(ids)[0]
        context, valid = context_windows(sentence, self.window, seed + 1)
        chunk = chunk_size(self.tables.vocab_size)
        for start in tf.range(0, n, chunk):
            rows = tf.range(start, tf.minimum(start + chunk, n))
            self._chunk(tf.gather(ids, rows), tf.gather(ids, tf.gather(context, rows)),
                        tf.gather(valid, rows), tf.gather(rate, rows), seed + 2 + tf.cast(start, tf.int64))
        return tf.cast(n, tf.int64)

    def _chunk(self, centre, context, valid, rate, seed):
        """Update from the centre words ``centre`` [C] and their windows ``context`` [C, 2 window]."""
        syn0, syn1neg = self.tables.syn0.value, self.tables.syn1neg.value
        mask = tf.cast(valid, tf.float32)
        if self.cbow:
            count = tf.reduce_sum(mask, 1)
            h_rows, target = centre, centre
            pair_rate = rate * tf.cast(count > 0, tf.float32)
        else:  # one pair per valid (centre, context): the context word's vector predicts the centre word
            where = tf.where(valid)
            h_rows, target = tf.gather_nd(context, where), tf.gather(centre, where[:, 0])
            pair_rate = tf.gather(rate, where[:, 0])
        draws = tf.random.stateless_uniform([tf.shape(target)[0], self.negative], seed, 0,
                                            self.cum[-1], tf.int64)
        noise = tf.reshape(tf.cast(tf.searchsorted(self.cum, tf.reshape(draws, [-1]), side="right"), tf.int32),
                           tf.shape(draws))
        targets = tf.concat([target[:, None], noise], 1)
        labels = tf.concat([tf.ones_like(target[:, None], tf.float32),
                            tf.zeros_like(noise, tf.float32)], 1)
        weights = tf.concat([tf.ones_like(labels[:, :1]), tf.cast(noise != target[:, None], tf.float32)], 1)
        out = tf.gather(syn1neg, targets)
        if self.cbow:
            h = tf.einsum("cw,cwd->cd", mask, tf.gather(syn0, context)) / tf.maximum(count, 1)[:, None]
        else:
            h = tf.gather(syn0, h_rows)
        with tf.GradientTape() as tape:
            tape.watch([h, out])
            loss = ns_loss(h, out, labels, weights * pair_rate[:, None])
        dh, dout = tape.gradient(loss, [h, out])  # already times each pair's rate
        syn1neg.scatter_add(tf.IndexedSlices(tf.reshape(-dout, [-1, self.tables.dim]),
                                             tf.reshape(targets, [-1])))
        if self.cbow:  # the whole error goes to every context word (gensim's cbow_mean=1)
            where = tf.where(valid)
            syn0.scatter_add(tf.IndexedSlices(-tf.gather(dh, where[:, 0]), tf.gather_nd(context, where)))
        else:
            syn0.scatter_add(tf.IndexedSlices(-dh, h_rows))


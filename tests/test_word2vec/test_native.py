"""The native word2vec kernel against a NumPy re-implementation that draws the same LCG numbers."""
import math

import numpy as np
import pytest
import tensorflow as tf

from lm_app.word2vec import sampling

from tests.test_native import kernels  # noqa: F401  (the fixture: the built ops, else a skip)


def reference(syn0, syn1, ids, splits, sample_int, cum, alpha, seed, cbow, window, negative):
    """gensim's train_batch_cbow / train_batch_sg with negative sampling, one word at a time, in NumPy."""
    syn0, syn1 = syn0.copy(), syn1.copy()
    e = np.exp((np.arange(1000) / 1000 * 2 - 1) * 6).astype(np.float32)
    table = e / (e + 1)  # word2vec.c's sigmoid over (-6, 6); beyond, a pair is skipped

    def pair(target, h, rate, lcg):
        work = np.zeros_like(h)
        for d in range(negative + 1):
            word, label = target, 1.0
            if d:
                word, label = sampling.noise_word(cum, lcg.draw()), 0.0
                if word == target:
                    continue
            f = np.dot(h, syn1[word])
            if abs(f) >= 6:
                continue
            g = np.float32((label - table[int((f + np.float32(6)) * np.float32(1000 / 12))]) * rate)
            work += g * syn1[word]
            syn1[word] += g * h
        return work

    for s in range(len(splits) - 1):
        begin, end = splits[s], splits[s + 1]
        rate = alpha[0] + (alpha[1] - alpha[0]) * begin / splits[-1]
        lcg = sampling.Lcg(sampling.sentence_seed(seed[0], seed[1], seed[2] + s))
        kept = [w for w in ids[begin:end] if lcg.draw32() <= sample_int[w]]
        reduced = [lcg.draw32() % window for _ in kept]
        for i, centre in enumerate(kept):
            around = [kept[m] for m in range(max(0, i - window + reduced[i]),
                                             min(len(kept), i + window + 1 - reduced[i])) if m != i]
            if cbow and around:
                work = pair(centre, syn0[around].mean(0), rate, lcg)
                for m in around:
                    syn0[m] += work
            elif not cbow:
                for m in around:  # the context word's vector predicts the centre word
                    syn0[m] += pair(centre, syn0[m].copy(), rate, lcg)
    return syn0, syn1


def problem(vocab=9, dim=12, words=60, sentences=(25, 35), seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, 50, vocab).astype(float)
    counts[0] = 0
    ids = rng.integers(1, vocab, words).astype(np.int32)
    splits = np.concatenate([[0], np.cumsum(sentences)]).astype(np.int64)
    return (rng.uniform(-0.5, 0.5, (vocab, dim)).astype(np.float32) / dim * scale,
            rng.normal(0, 0.1 * scale, (vocab, dim)).astype(np.float32), ids, splits,
            sampling.sample_int(counts, 0.02), sampling.cum_table(counts))


def run_op(ops, syn0, syn1, ids, splits, sample_int, cum, alpha, seed, cbow, window, negative, threads=1):
    v0, v1 = tf.Variable(syn0), tf.Variable(syn1)
    kept = ops.lm_app_word2vec(v0.handle, v1.handle, ids, splits, sample_int, cum, np.float32(alpha), seed,
                               cbow=cbow, window=window, negative=negative, threads=threads)
    return v0.numpy(), v1.numpy(), int(kept)


@pytest.mark.parametrize("scale", [1, 30])  # 30: some dot products beyond +-6, skipped
@pytest.mark.parametrize("cbow", [True, False])
def test_kernel_equals_numpy(kernels, cbow, scale):
    syn0, syn1, ids, splits, sample_int, cum = problem(scale=scale)
    args = (ids, splits, sample_int, cum, [0.05, 0.03], [7, 2, 40], cbow, 3, 4)
    got0, got1, kept = run_op(kernels, syn0, syn1, *args)
    want0, want1 = reference(syn0, syn1, *args)
    assert 0 < kept < len(ids)  # some words were subsampled away
    assert not np.allclose(got0, syn0)  # it trained
    np.testing.assert_allclose(got0, want0, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(got1, want1, rtol=1e-4, atol=1e-6)


def test_a_read_tensor_keeps_its_values(kernels):
    """The op copies a buffer still shared with a read value before writing (as TensorFlow's own updates)."""
    syn0, syn1, ids, splits, sample_int, cum = problem()
    v0, v1 = tf.Variable(syn0), tf.Variable(syn1)
    before = v0.read_value()
    kernels.lm_app_word2vec(v0.handle, v1.handle, ids, splits, sample_int, cum, np.float32([0.05, 0.05]),
                            [1, 0, 0], cbow=True, window=3, negative=2, threads=2)
    np.testing.assert_array_equal(before.numpy(), syn0)
    assert not np.allclose(v0.numpy(), syn0)


def test_subsampling_keeps_the_formulas_share(kernels):
    """A frequent word's kept share over many sentences is its keep-probability, within 3 sigma."""
    counts = np.array([0, 10_000, 10, 10], float)
    keep = sampling.keep_probability(counts, 1e-3)[1]
    n, length = 400, 50
    ids = np.ones(n * length, np.int32)
    splits = np.arange(0, n * length + 1, length, dtype=np.int64)
    syn = np.zeros((4, 4), np.float32)
    _, _, kept = run_op(kernels, syn, syn, ids, splits, sampling.sample_int(counts, 1e-3),
                        sampling.cum_table(counts), [0.0, 0.0], [3, 0, 0], True, 2, 1, threads=2)
    assert abs(kept / ids.size - keep) < 3 * math.sqrt(keep * (1 - keep) / ids.size)


def test_bad_ids_are_refused(kernels):
    syn0, syn1, ids, splits, sample_int, cum = problem()
    ids[3] = 99
    with pytest.raises(tf.errors.InvalidArgumentError, match="outside"):
        run_op(kernels, syn0, syn1, ids, splits, sample_int, cum, [0.1, 0.1], [0, 0, 0], True, 2, 2)

"""The formulas of sampling.py against their definitions, and statistically against the native kernel's draws."""
import math

import numpy as np

from lm_app.word2vec import sampling


def test_keep_probability_is_gensims_formula():
    counts = np.array([0, 5, 100, 10_000])
    sample = 1e-3
    t = sample * counts.sum()
    keep = sampling.keep_probability(counts, sample)
    assert keep[0] == 1 and keep[1] == 1  # rare words are always kept
    assert math.isclose(keep[3], (math.sqrt(10_000 / t) + 1) * t / 10_000)
    assert keep[3] < keep[2] <= 1
    assert (sampling.keep_probability(counts, 0) == 1).all()
    assert sampling.sample_int(counts, sample)[3] == round(keep[3] * 2**32)


def test_cum_table_ends_at_its_domain_and_never_draws_a_zero_count():
    table = sampling.cum_table([0, 0, 16, 1])
    assert table[-1] == sampling.CUM_TABLE_DOMAIN
    lcg = sampling.Lcg(12345)
    draws = [sampling.noise_word(table, lcg.draw()) for _ in range(2000)]
    assert 0 not in draws and 1 not in draws
    share = np.mean(np.array(draws) == 2)  # 16^0.75 : 1 = 8 : 1
    assert abs(share - 8 / 9) < 3 * math.sqrt(8 / 81 / 2000)


def test_learning_rate_falls_linearly_to_the_minimum():
    assert sampling.learning_rate(0.025, 0.0001, 0, 100) == 0.025
    assert math.isclose(sampling.learning_rate(0.025, 0.0001, 50, 100), (0.025 + 0.0001) / 2)
    assert math.isclose(sampling.learning_rate(0.025, 0.0001, 100, 100), 0.0001)
    assert math.isclose(sampling.learning_rate(0.025, 0.0001, 200, 100), 0.0001)  # never below


def test_lcg_is_word2vecs():
    lcg = sampling.Lcg(1)
    assert [lcg.draw() for _ in range(3)] == [1, 25214903928, (25214903928 * 25214903917 + 11) % 2**48]


def test_sentences_cut_at_file_ends_and_every_limit():
    assert sampling.sentences([5, 5, 12], limit=4).tolist() == [0, 4, 5, 9, 12]
    assert sampling.sentences([]).tolist() == [0]

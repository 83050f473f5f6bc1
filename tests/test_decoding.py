"""Sampling, greedy and beam search over known distributions and a toy Markov chain."""
import itertools
import random

import numpy as np
import pytest

from lm_app import decoding
from lm_app.decoding import beam_search, generate, sample_next

# A Markov chain over ids 0..4 (0 = <pad>) on which greedy decoding is not optimal:
# from 1 greedy takes 2 (0.53) and then at best 0.34, total 0.18; 3 (0.44) then 4 (0.96) is 0.42.
CHAIN = np.array([
    [0.20, 0.20, 0.20, 0.20, 0.20],
    [0.01, 0.01, 0.53, 0.44, 0.01],
    [0.01, 0.34, 0.01, 0.32, 0.32],
    [0.01, 0.01, 0.01, 0.01, 0.96],
    [0.01, 0.40, 0.20, 0.19, 0.20],
])
KNOWN = np.array([0.5, 0.3, 0.15, 0.05])


class Markov:
    """next_log_probs of the chain: the next id depends on the last one; records the calls."""

    def __init__(self, table=CHAIN):
        self.log_table = np.log(table)
        self.calls = []

    def __call__(self, sequences):
        self.calls.append([list(s) for s in sequences])
        return self.log_table[[s[-1] for s in sequences]]

    def log_prob(self, prompt, ids):
        sequence = list(prompt) + list(ids)
        return sum(self.log_table[a, b] for a, b in zip(sequence[len(prompt) - 1:], ids))


def flat(vocab=50):
    return lambda sequences: np.full((len(sequences), vocab), -np.log(vocab))


def draws(log_probs, n=3000, seed=0, **kwargs):
    rng = np.random.default_rng(seed)
    return np.array([sample_next(log_probs, rng, **kwargs) for _ in range(n)])


def greedy_path(model, prompt, n):
    sequence = list(prompt)
    for _ in range(n):
        sequence.append(int(np.argmax(model([sequence])[0])))
    return sequence[len(prompt):]


def test_same_seed_same_text_other_seed_other_text():
    first = generate(flat(), [1], 30, seed=7)
    assert generate(flat(), [1], 30, seed=7) == first
    assert generate(flat(), [1], 30, seed=8)[0] != first[0]
    assert len(set(first[0])) > 10  # it is sampling, not repeating one word
    np.testing.assert_allclose(first[1], 30 * -np.log(50), rtol=1e-12)


def test_only_the_given_rng_is_used():
    log_probs = np.log(np.full(20, 0.05))
    random.seed(1)
    np.random.seed(1)
    a = [sample_next(log_probs, np.random.default_rng(3)) for _ in range(5)]
    random.seed(2)
    np.random.seed(2)
    b = [sample_next(log_probs, np.random.default_rng(3)) for _ in range(5)]
    assert a == b
    assert "random" not in vars(decoding)


@pytest.mark.parametrize("temperature", [0.0, 1e-7])
def test_temperature_zero_is_greedy(temperature):
    model = Markov()
    want = greedy_path(model, [4], 8)
    for seed in range(3):
        ids, _ = generate(model, [4], 8, seed=seed, temperature=temperature)
        assert ids == want
    assert generate(model, [4], 8, greedy=True, temperature=5.0)[0] == want
    assert want[:2] == [1, 2]  # greedy from 4: 1 (0.40), then 2 (0.53)


def test_beam_width_one_is_greedy():
    model = Markov()
    ids, log_prob = generate(model, [1], 6, greedy=True)
    [(beam_ids, beam_log_prob)] = beam_search(model, [1], 6, beam=1)
    assert beam_ids == ids
    np.testing.assert_allclose(beam_log_prob, log_prob, rtol=1e-12)


def test_top_k_one_is_greedy():
    model = Markov()
    want = generate(model, [3], 7, greedy=True)
    for seed in range(5):
        assert generate(model, [3], 7, seed=seed, temperature=1.5, top_k=1) == want


@pytest.mark.parametrize("top_p, allowed", [(0.5, {0}), (0.75, {0, 1}), (0.8, {0, 1}),
                                            (0.81, {0, 1, 2}), (0.96, {0, 1, 2, 3}),
                                            (1.0, {0, 1, 2, 3})])
def test_top_p_keeps_the_smallest_set_that_reaches_p(top_p, allowed):
    seen = draws(np.log(KNOWN), top_p=top_p)
    assert set(seen) == allowed  # never outside it, and every kept id does come up
    kept = sorted(allowed)
    for i in kept:  # renormalised over the kept ids
        assert abs(np.mean(seen == i) - KNOWN[i] / KNOWN[kept].sum()) < 0.03


def test_top_p_sorts_by_probability_not_by_id():
    permutation = np.array([3, 0, 2, 1])  # id 3 has 0.5, id 0 0.3, id 2 0.15, id 1 0.05
    log_probs = np.empty(4)
    log_probs[permutation] = np.log(KNOWN)
    assert set(draws(log_probs, top_p=0.8)) == {3, 0}
    assert set(draws(log_probs, top_p=0.81)) == {3, 0, 2}


def test_ties_are_broken_by_id():
    quarter = np.log(np.full(4, 0.25))
    assert set(draws(quarter, n=500, top_p=0.5)) == {0, 1}
    assert set(draws(quarter, n=500, top_k=3)) == {0, 1, 2}
    assert sample_next(quarter, np.random.default_rng(0), temperature=0) == 0


def test_top_k_keeps_the_k_most_likely():
    seen = draws(np.log(KNOWN), top_k=2)
    assert set(seen) == {0, 1}
    assert abs(np.mean(seen == 0) - 0.5 / 0.8) < 0.03


@pytest.mark.parametrize("temperature", [0.5, 2.0])
def test_temperature_reshapes_the_distribution(temperature):
    probs = np.array([0.6, 0.4])
    want = probs ** (1 / temperature) / (probs ** (1 / temperature)).sum()
    seen = draws(np.log(probs), n=4000, temperature=temperature)
    assert abs(np.mean(seen == 0) - want[0]) < 0.025


def test_banned_ids_never_come_up():
    log_probs = np.log(np.array([0.7, 0.1, 0.1, 0.1]))  # the banned <pad> is the most likely
    assert 0 not in set(draws(log_probs, banned=(0,)))
    assert set(draws(log_probs, banned=[0, 2], top_p=0.4)) == {1}
    assert sample_next(log_probs, np.random.default_rng(0), temperature=0, banned=(0,)) == 1
    model = Markov()
    for seed in range(5):
        ids, _ = generate(model, [0], 20, seed=seed, banned=(0, 4))
        assert not {0, 4} & set(ids)
    for ids, _ in beam_search(model, [1], 3, beam=5, banned=(4,)):
        assert 4 not in ids


def test_generate_scores_with_the_unfiltered_model_and_feeds_back():
    model = Markov()
    ids, log_prob = generate(model, [2, 1], 6, seed=4, temperature=0.7, top_k=2)
    assert len(ids) == 6
    np.testing.assert_allclose(log_prob, model.log_prob([2, 1], ids), rtol=1e-12)
    assert model.calls == [[[2, 1] + ids[:t]] for t in range(6)]


def test_beam_search_beats_greedy_on_the_chain():
    model = Markov()
    greedy_ids, greedy_log_prob = generate(model, [1], 2, greedy=True)
    assert greedy_ids == [2, 1]
    model = Markov()
    results = beam_search(model, [1], 2, beam=2)
    assert results[0][0] == [3, 4]
    assert results[0][1] > greedy_log_prob
    np.testing.assert_allclose(results[0][1], np.log(0.44 * 0.96), rtol=1e-12)
    assert model.calls == [[[1]], [[1, 2], [1, 3]]]  # one call per step, for all the beams


def test_beam_search_is_exact_when_the_beam_holds_everything():
    model = Markov()
    results = beam_search(model, [1], 3, beam=200)  # 5**3 = 125 sequences, all kept
    every = sorted(((list(ids), model.log_prob([1], ids))
                    for ids in itertools.product(range(5), repeat=3)), key=lambda r: -r[1])
    assert len(results) == 125
    assert len({tuple(ids) for ids, _ in results}) == 125
    scores = [score for _, score in results]
    assert scores == sorted(scores, reverse=True)
    for ids, score in results:  # the total is the sum of the step log-probs
        np.testing.assert_allclose(score, model.log_prob([1], ids), rtol=1e-12)
    np.testing.assert_allclose(scores, [score for _, score in every], rtol=1e-12)
    assert results[0][0] == every[0][0]


def test_beam_search_keeps_beam_hypotheses_best_first():
    model = Markov()
    results = beam_search(model, [4], 4, beam=3)
    assert len(results) == 3
    scores = [score for _, score in results]
    assert scores == sorted(scores, reverse=True)
    assert all(len(ids) == 4 for ids, _ in results)
    greedy_ids, greedy_score = generate(model, [4], 4, greedy=True)
    assert scores[0] >= greedy_score - 1e-12


def test_bad_arguments():
    rng = np.random.default_rng(0)
    log_probs = np.log(KNOWN)
    # The ranges of temperature, top_k, top_p, beam and n_words are generate's rules, tested once in
    # tests/test_config.py; here they are assertions.  What only the model can get wrong stays an error:
    with pytest.raises(ValueError, match="banned"):
        sample_next(log_probs, rng, banned=range(4))
    with pytest.raises(ValueError, match="NaN"):
        sample_next(np.array([0.0, np.nan]), rng)

"""Choosing the next words from a model's log-probabilities: sampling, greedy, beam search.

Everything here works on a callback ``next_log_probs(sequences) -> (n, vocab)``
that gives, for each prefix of ids, the log-probabilities of the next id, so
that the same algorithms serve the language model, a seq2seq decoder or a toy
Markov chain in a test, and none of them needs TensorFlow.  Randomness comes
only from the ``numpy.random.Generator`` passed in (or made from ``seed``), so
that a seed replays a generation exactly.
"""
import numpy as np

# A total that reaches top_p up to float rounding counts as reaching it: the
# probabilities come out of exp and a renormalisation, so 0.5 + 0.3 may be
# 0.7999999999999999 where the user meant 0.8.
_TOP_P_SLACK = 1e-9


def _check_log_probs(log_probs):
    log_probs = np.asarray(log_probs, dtype=np.float64)
    if log_probs.ndim != 1 or log_probs.size == 0:
        raise ValueError(f"log_probs must be a non-empty vector, got shape {log_probs.shape}")
    if np.isnan(log_probs).any():
        raise ValueError("log_probs contains NaN")
    return log_probs


def _ban(log_probs, banned):
    log_probs = log_probs.copy()
    banned = list(banned)
    if banned:
        log_probs[banned] = -np.inf
    if not np.isfinite(log_probs).any():
        raise ValueError("every id is banned or has zero probability")
    return log_probs


def sample_next(log_probs, rng, temperature=1.0, top_k=0, top_p=1.0, banned=()):
    """One id drawn from ``log_probs`` (vocab,) after the filters, in this order:

    ``banned`` ids get probability 0; ``temperature`` divides the log-probs
    (below 1 sharper, above 1 flatter; 0, or anything <= 1e-6, is the argmax,
    i.e. greedy); ``top_k`` > 0 keeps the k most likely ids; ``top_p`` < 1
    keeps the smallest set of most likely ids whose total probability reaches
    p (nucleus sampling, Holtzman et al. 2019: the cut follows the shape of the
    distribution, few ids when it is peaked, many when it is flat).  What is
    left is renormalised.  Ties are broken towards the lower id, so that the
    kept set, hence the draw for a given ``rng`` state, is deterministic.
    """
    # The ranges are generate's rules, checked once by config.GenerateConfig.validate.
    assert temperature >= 0 and top_k >= 0 and 0 < top_p <= 1, (temperature, top_k, top_p)
    log_probs = _ban(_check_log_probs(log_probs), banned)
    if temperature <= 1e-6:
        return int(np.argmax(log_probs))  # the first of equal maxima

    scaled = log_probs / temperature
    probs = np.exp(scaled - scaled.max())
    probs /= probs.sum()
    order = np.argsort(-probs, kind="stable")  # most likely first, lower id first among equals
    order = order[probs[order] > 0]  # a zero-probability id is never kept
    if top_k > 0:
        order = order[:top_k]
    kept = probs[order] / probs[order].sum()
    if top_p < 1:
        reached = np.searchsorted(np.cumsum(kept), top_p - _TOP_P_SLACK, side="left")
        order = order[:min(int(reached) + 1, len(order))]
        kept = probs[order] / probs[order].sum()
    return int(order[rng.choice(len(order), p=kept)])


def generate(next_log_probs, prompt_ids, n_words, seed=None, temperature=1.0, top_k=0,
             top_p=1.0, greedy=False, banned=()):
    """``n_words`` ids after ``prompt_ids``, each chosen by ``sample_next`` and fed back.

    Returns ``(ids, total_log_prob)``: the new ids only (not the prompt) and
    the sum of their log-probabilities under the model's own, unfiltered
    distribution (what the model thinks of the text, whatever the sampling
    filters did to pick it).  ``greedy`` is ``temperature=0``.
    """
    assert n_words >= 0, n_words
    rng = np.random.default_rng(seed)
    sequence = [int(i) for i in prompt_ids]
    new, total = [], 0.0
    for _ in range(n_words):
        log_probs = _check_log_probs(np.asarray(next_log_probs([sequence]))[0])
        token = sample_next(log_probs, rng, 0.0 if greedy else temperature, top_k, top_p, banned)
        total += float(log_probs[token])
        sequence.append(token)
        new.append(token)
    return new, total


def beam_search(next_log_probs, prompt_ids, n_words, beam=4, banned=(), end=None):
    """The ``beam`` most likely continuations of ``n_words`` ids, best first.

    Returns a list of ``(ids, total_log_prob)`` (new ids only).  Greedy
    decoding commits to the best word at each step and can miss a sequence
    whose first word is less likely but whose continuation is much more so;
    keeping the ``beam`` best partial sequences by total log-probability finds
    it at ``beam`` times the cost.  All hypotheses are expanded in one
    ``next_log_probs`` call per step.  Equal totals are ordered by hypothesis,
    then by id, so the result is deterministic; ``beam=1`` is greedy.
    With ``end`` (e.g. a dialogue's end of turn), a hypothesis that chose it is
    finished: it keeps its total and competes unchanged with the longer ones,
    and the search stops early once all are finished.
    """
    assert beam >= 1 and n_words >= 0, (beam, n_words)
    prompt = [int(i) for i in prompt_ids]
    hypotheses = [([], 0.0)]
    for _ in range(n_words):
        finished = [end is not None and bool(ids) and ids[-1] == end for ids, _ in hypotheses]
        if all(finished):
            break
        live = [ids for (ids, _), done in zip(hypotheses, finished) if not done]
        scored = np.asarray(next_log_probs([prompt + ids for ids in live]), dtype=np.float64)
        if scored.ndim != 2 or len(scored) != len(live):
            raise ValueError(f"next_log_probs gave shape {scored.shape} for {len(live)} sequences")
        rows = iter(np.stack([_ban(_check_log_probs(row), banned) for row in scored]))
        stay = np.full(scored.shape[1], -np.inf)
        stay[end if end is not None else 0] = 0.0  # a finished hypothesis "chooses" end once more, at no cost
        log_probs = np.stack([stay if done else next(rows) for done in finished])
        totals = np.array([score for _, score in hypotheses])[:, None] + log_probs
        flat = totals.ravel()
        best = np.argsort(-flat, kind="stable")[:beam]  # row-major: by hypothesis, then by id
        best = best[np.isfinite(flat[best])]
        vocab = log_probs.shape[1]
        hypotheses = [(hypotheses[i // vocab][0] + ([] if finished[i // vocab] else [int(i % vocab)]), float(flat[i]))
                      for i in best]
    return hypotheses

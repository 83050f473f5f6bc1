"""``evaluate`` on a dialogue model: response perplexity (VHRED: its bound, and the KL), and distinct-n of samples.

Every turn after the first ``--context-turns`` of each dialogue is scored as
in training's held-out parts.  For VHRED the per-token loss is the negative
ELBO (the KL fully weighed, z from the posterior), so ``exp`` of it bounds the
perplexity from above and is labelled so.  Distinct-1 and distinct-2 (Li et
al. 2016: distinct n-grams over all n-grams, ``</s>`` left out) measure how
varied ``samples`` answers per context, sampled at ``temperature``, are:
pooled over every context's answers (Li et al.'s corpus-wide count), and
distinct-2 within each context's own answers, averaged over the contexts
(the intra-distinct of Gu et al. 2019: what varies with the same context).  With a
vectors file, each sampled answer is also scored against the reference
response by the embedding scores of :mod:`.embedding_metrics`.
"""
import numpy as np
import tensorflow as tf

from .. import losses
from .data import Examples, end_of_turn, read_dialogues
from .embedding_metrics import NAMES, EmbeddingScorer
from .export import decode


def distinct(responses, n):
    """Distinct n-grams over all n-grams of ``responses`` (lists of ids); 0 when there is none."""
    grams = [tuple(r[i:i + n]) for r in responses for i in range(len(r) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def distinct_per_context(answers, samples, n):
    """``distinct`` within each context's ``samples`` answers (consecutive in ``answers``), averaged."""
    return float(np.mean([distinct(answers[i:i + samples], n) for i in range(0, len(answers), samples)]))


def score_dialogues(model, cfg, vocab, files, samples=5, temperature=1.0, batch_size=64, embeddings=None):
    """The report of ``evaluate`` for a dialogue model over ``files`` (``embeddings``: a vectors file, or None)."""
    examples = Examples(read_dialogues(files, vocab), cfg.context_turns, cfg.max_turn_words, end_of_turn(len(vocab)))
    if not len(examples):
        from ..errors import UsageError

        raise UsageError(f"the corpus has no dialogue of more than {cfg.context_turns} turns to score")
    score = tf.function(lambda x, y: model.token_losses(x, y), reduce_retracing=True)
    sample = tf.function(lambda x: decode(model, tf.repeat(x, samples, axis=0), cfg.max_turn_words + 1,
                                          temperature)[0], reduce_retracing=True)
    scorer = EmbeddingScorer(embeddings, vocab.tokens) if embeddings else None
    sums, kls, answers = np.zeros(4), [], []

    def words(row):
        return [w for w in row if w != model.eot and w != 0]

    for x, y in examples.batches(batch_size):
        token_losses, ranks, kl = score(x, y)
        sums += losses.totals(token_losses, ranks).numpy()
        if kl is not None:
            kls.append(kl.numpy())
        batch_answers = [words(row) for row in sample(x).numpy()]
        answers.extend(batch_answers)
        if scorer:
            for i, answer in enumerate(batch_answers):  # each context's samples follow one another
                scorer.add(answer, words(y[i // samples].numpy()))
    nll = sums[0] / sums[3]
    report = {"objective": "dialogue", "arch": cfg.arch, "responses": len(examples), "tokens": int(sums[3]),
              "cross_entropy": nll, "perplexity": losses.perplexity(nll), "perplexity_is_bound": bool(kls),
              "accuracy": sums[1] / sums[3], "top5": sums[2] / sums[3], "samples_per_context": samples,
              "distinct_1": distinct(answers, 1), "distinct_2": distinct(answers, 2),
              "distinct_2_per_context": distinct_per_context(answers, samples, 2),
              "answer_words": float(np.mean([len(a) for a in answers]))}
    if kls:
        report["kl_per_response"] = float(np.mean(np.concatenate(kls)))
    if scorer:
        report.update(scorer.result())
    return report


def format_report(r):
    bound = " (an upper bound: the ELBO's)" if r["perplexity_is_bound"] else ""
    lines = [f"responses         {r['responses']:,} ({r['tokens']:,} tokens)",
             f"cross-entropy     {r['cross_entropy']:.4f} nats/token{bound}",
             f"perplexity        {r['perplexity']:.2f}{bound}"]
    if "kl_per_response" in r:
        lines.append(f"KL per response   {r['kl_per_response']:.3f} nats")
    return "\n".join(lines + [
        f"accuracy          {r['accuracy']:.2%}",
        f"top-5 accuracy    {r['top5']:.2%}",
        f"distinct-1        {r['distinct_1']:.3f} ({r['samples_per_context']} samples per context)",
        f"distinct-2        {r['distinct_2']:.3f} (within each context's samples: "
        f"{r['distinct_2_per_context']:.3f}; {r['answer_words']:.1f} words an answer)",
    ] + [f"embedding {name:<8}{r['embedding_' + name]:.3f} ({r['embedding_pairs']:,} answer/reference pairs)"
         for name in NAMES if r.get(f"embedding_{name}") is not None])

"""Held-out evaluation of a trained model folder, streaming, by the standard definition.

Perplexity is ``exp(mean NLL)`` over every predicted token, ``<eos>``
included (as PyTorch's ``word_language_model`` reports it).  A window model
predicts every token that has a full window before it in its file.  A stream
model predicts every token but the first, once, from the state the tokens
before it left.  Read as one row (``rows=1``) that is exact but slow: each
step of the recurrent loop then works on one token.  So the stream is cut
into contiguous rows scored side by side (:func:`stream_rows`), and each row
but the first reads the ``BURN_IN`` tokens before it, unscored, from a zero
state.  (PyTorch's ``word_language_model`` starts its rows blank instead,
which predicts each row's first tokens without context and raises the
perplexity.)  A recurrent state forgets its distant past geometrically, and
LSTM language models use about 200 tokens of context (Khandelwal et al.
2018), so after the burn-in the rows' scores equal the one-row scores to
within rounding: ``tests/test_evaluate.py`` pins it, ``bench/evaluate.py``
prints the difference on gutenberg.  Files are read through ``tf.data``, a
block of rows at a time, never held whole, so a corpus larger than memory
works.
"""
import concurrent.futures
import itertools
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

from . import data, losses, text
from .atomic import read_json
from .config import TrainConfig
from .corpus import Vocabulary, find_files
from .errors import UsageError
from .export import VOCAB_NAME
from .models import model_from_config

EVAL_ROWS = 64  # rows scored side by side: the calls' matrix products get a wide batch
ROW_LENGTH = 2048  # predicted tokens per row of a full block: what is read before the first call
BURN_IN = 512  # tokens a row reads, unscored, before its first prediction
CALL_TOKENS = 2048  # tokens per call (rows x steps): the logits of one call are this x the vocabulary


def load_trained(model_dir):
    """Rebuild the Keras model of a model folder from its config.json and best weights."""
    model_dir = Path(model_dir)
    config = read_json(model_dir / "config.json", "model settings")
    cfg = TrainConfig.from_dict(config)
    vocab = Vocabulary.load(model_dir / VOCAB_NAME)
    if vocab.meta["sha256"] != config.get("vocab_sha256"):
        raise UsageError(f"the vocabulary in {model_dir} is not the one its model was trained with")
    weights = model_dir / "checkpoints" / "best.weights.h5"
    model = model_from_config(cfg, len(vocab))
    try:
        model.load_weights(weights)
    except (OSError, ValueError) as e:
        raise UsageError(f"cannot load the weights {weights}: {' '.join(str(e).split())[:200]}") from None
    return model, cfg, vocab


def stream_pairs(files, vocab):
    """The corpus' predictions in order, as flat ``(x, y)`` blocks: ``y`` is the token after ``x``."""
    table = data.lookup_table(vocab)
    ids = tf.data.Dataset.from_tensor_slices(list(files)).flat_map(
        lambda path: data.file_ids(path, table, vocab))

    def pair(prev_last, block):
        joined = tf.concat([prev_last, block], axis=0)
        return joined[-1:], (joined[:-1], joined[1:])

    return ids.scan(tf.zeros([0], tf.int32), pair)


def stream_rows(files, vocab, rows=EVAL_ROWS, length=ROW_LENGTH, burn_in=BURN_IN):
    """The predictions in blocks of at most ``rows`` contiguous rows: ``(warm, x, y, keep)``, each ``[r, ...]``.

    A block holds ``rows * length`` predictions (the last block fewer, cut into
    rows no shorter than ``burn_in``, so a short corpus gets fewer rows); ``warm``
    is the ``burn_in`` inputs before each row (zeros before the corpus' start,
    only in row 0, whose state is carried instead), ``keep`` marks the
    predictions (the last row is padded).  Only a block is ever held.
    """
    assert rows > 0 and length >= burn_in >= 0, (rows, length, burn_in)

    def block(tail, pairs):
        x, y = pairs
        m = tf.size(y)
        r = tf.clip_by_value(m // max(burn_in, 1), 1, rows)
        width = (m + r - 1) // r
        pad = tf.zeros([r * width - m], tf.int32)
        inputs = tf.concat([tail, x, pad], 0)  # the block's inputs, after the burn_in before them
        warm = tf.gather(inputs, tf.range(r)[:, None] * width + tf.range(burn_in)[None, :])
        keep = tf.reshape(tf.range(r * width) < m, [r, width])
        seen = tf.concat([tail, x], 0)
        return seen[tf.size(seen) - burn_in:], (warm, tf.reshape(inputs[burn_in:], [r, width]),
                                                tf.reshape(tf.concat([y, pad], 0), [r, width]), keep)

    pairs = stream_pairs(files, vocab).rebatch(rows * length).filter(lambda x, y: tf.size(y) > 0)
    return data.fixed_pipeline(pairs.scan(tf.zeros([burn_in], tf.int32), block).prefetch(1))


def evaluate(model_dir, corpus, pretokenized=None, embeddings=None, rows=EVAL_ROWS):
    """Cross-entropy, perplexity, accuracy, top-5 and the share of ``<unk>`` over a corpus.

    ``embeddings`` (a vectors file) adds a dialogue model's embedding scores.
    """
    model, cfg, vocab = load_trained(model_dir)
    if cfg.objective == "dialogue":
        from .dialogue.evaluate import score_dialogues

        return score_dialogues(model, cfg, vocab, find_files(corpus), embeddings=embeddings)
    if embeddings:
        raise UsageError("--embeddings scores the answers of a dialogue model; this is a next-word model")
    if cfg.arch == "seq2seq":
        raise UsageError("evaluate scores next-word models; a seq2seq model's held-out scores "
                         "are in its metrics.json")
    if pretokenized is not None and pretokenized != (vocab.mode == "pretokenized"):
        raise UsageError(f"the model in {model_dir} was trained on "
                         f"{'pretokenized' if vocab.mode == 'pretokenized' else 'plain'} text; "
                         f"{'drop' if pretokenized else 'add'} --pretokenized")
    return score(model, cfg, vocab, find_files(corpus), rows=rows)


def score(model, cfg, vocab, files, batch_size=256, rows=EVAL_ROWS, **layout):
    """The metrics of ``model`` over ``files`` (see the module docstring for which tokens count).

    ``rows`` (a stream model's) and ``layout`` (:func:`stream_rows`' ``length``
    and ``burn_in``) say how the stream is cut; ``rows=1`` is the exact definition.
    """
    start = time.perf_counter()
    if cfg.objective == "stream":
        sums, unk = stream_sums(model, stream_rows(files, vocab, rows, **layout))
    else:
        sums, unk = window_sums(model, data.batched(data.window_dataset(files, vocab, cfg.window, "all"),
                                                    batch_size))
    seconds = time.perf_counter() - start
    if sums[3] == 0:
        raise UsageError(f"the corpus ({len(files)} file(s)) has no token to predict")
    nll = sums[0] / sums[3]
    return {
        "tokens": int(sums[3]),
        "cross_entropy": nll,
        "perplexity": losses.perplexity(nll),
        "accuracy": sums[1] / sums[3],
        "top5": sums[2] / sums[3],
        "unk_share": unk / sums[3],
        "tokens_per_second": sums[3] / max(seconds, 1e-9),
        "objective": cfg.objective,
    }


def label_totals(token_losses, ranks, labels):
    """:func:`losses.totals` of flat predictions, and how many of their labels are ``<unk>``."""
    return losses.totals(token_losses, ranks), tf.reduce_sum(tf.cast(labels == text.UNK_ID, tf.int64))


def stream_sums(model, blocks):
    """``([nll, top-1, top-5, tokens], <unk> labels)`` of a stream model over :func:`stream_rows`' blocks.

    Row 0 of a block continues the state the last row of the block before
    ended with (at the corpus' start, zeros); every other row starts from
    zeros and reads its ``warm`` tokens first, unscored.
    """
    ids = tf.TensorSpec([None, None], tf.int32)  # any rows and steps: one trace each
    state = [[tf.TensorSpec([None, s.shape[-1]], s.dtype) for s in layer] for layer in model.zero_states(1)]

    @tf.function(input_signature=[ids], autograph=False)
    def warm_up(warm):
        return model.features(tf.transpose(warm), None, training=False)[1]

    @tf.function(input_signature=[ids, ids, tf.TensorSpec([None, None], tf.bool), state], autograph=False)
    def step(x, y, keep, states):
        y = tf.transpose(y)  # time-major, as the model's loops run
        scores, states = model.token_losses(tf.transpose(x), y, states, training=False)
        keep = tf.reshape(tf.transpose(keep), [-1])
        kept = (tf.boolean_mask(t, keep) for t in (*scores, tf.reshape(y, [-1])))
        return label_totals(*kept), states

    blocks = iter(blocks)
    with concurrent.futures.ThreadPoolExecutor(1) as reader:  # the first block is read while the functions trace
        first = reader.submit(next, blocks, None)
        warm_up.get_concrete_function()
        step.get_concrete_function()
        first = first.result()
    sums, unk = np.zeros(4), 0
    carried = model.zero_states(1)
    for warm, x, y, keep in itertools.chain([first] if first else [], blocks):
        r, width = x.shape
        states = carried
        if r > 1:
            fresh = warm_up(warm) if warm.shape[1] else model.zero_states(r)
            states = [[tf.concat([c, w[1:]], 0) for c, w in zip(*layer)] for layer in zip(carried, fresh)]
        steps = -(-CALL_TOKENS // r)
        for t in range(0, width, steps):
            (s, u), states = step(x[:, t:t + steps], y[:, t:t + steps], keep[:, t:t + steps], states)
            sums += s.numpy()
            unk += int(u)
        carried = [[s[-1:] for s in layer] for layer in states]
    return sums, unk


def window_sums(model, windows):
    """The same sums for a window model over ``(x[batch, window], y[batch])`` batches."""
    @tf.function(reduce_retracing=True, autograph=False)
    def step(x, y):
        return label_totals(*losses.token_losses(y, model(x, training=False), training=False), y)

    sums, unk = np.zeros(4), 0
    for x, y in windows:
        s, u = step(x, y)
        sums += s.numpy()
        unk += int(u)
    return sums, unk


def format_report(r):
    if r["objective"] == "dialogue":
        from .dialogue.evaluate import format_report as dialogue_report

        return dialogue_report(r)
    return "\n".join([
        f"tokens predicted  {r['tokens']:,}",
        f"cross-entropy     {r['cross_entropy']:.4f} nats/token",
        f"perplexity        {r['perplexity']:.2f}",
        f"accuracy          {r['accuracy']:.2%}",
        f"top-5 accuracy    {r['top5']:.2%}",
        f"<unk> share       {r['unk_share']:.2%}",
        f"speed             {r['tokens_per_second']:,.0f} tokens/s",
    ])



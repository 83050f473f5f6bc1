"""Held-out evaluation of a trained model folder, streaming, by the standard definition.

Perplexity is ``exp(mean NLL)`` over every predicted token, ``<eos>``
included (as PyTorch's ``word_language_model`` reports it).  A stream model
reads the corpus as one row in chunks, carrying its state, so every token but
the first is predicted; a window model predicts every token that has a full
window before it in its file.  Files are read through ``tf.data``, never held
whole, so a corpus larger than memory works.
"""
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

EVAL_CHUNK = 512  # tokens per call for stream models: long enough to keep the kernels busy


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


def stream_batches(files, vocab, chunk=EVAL_CHUNK):
    """The corpus as one row: ``(x[1, n], y[1, n])`` chunks, ``y`` shifted by one token."""
    table = data.lookup_table(vocab)
    ids = tf.data.Dataset.from_tensor_slices(list(files)).flat_map(
        lambda path: data.file_ids(path, table, vocab)).unbatch().batch(chunk)

    def pair(prev_last, block):
        joined = tf.concat([prev_last, block], axis=0)
        return block[-1:], (joined[None, :-1], joined[None, 1:])

    return ids.scan(tf.zeros([0], tf.int32), pair).filter(lambda x, y: tf.size(y) > 0)


def evaluate(model_dir, corpus, pretokenized=None, embeddings=None):
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
    return score(model, cfg, vocab, find_files(corpus))


def score(model, cfg, vocab, files, batch_size=256):
    """The metrics of ``model`` over ``files`` (see the module docstring for which tokens count)."""
    sums = np.zeros(4)  # nll, top1, top5, tokens
    unk = 0

    @tf.function(reduce_retracing=True)
    def sum_up(logits, y):
        return (losses.totals(*losses.token_losses(y, logits, training=False)),
                tf.reduce_sum(tf.cast(y == text.UNK_ID, tf.int64)))

    start = time.perf_counter()
    if cfg.objective == "stream":
        step = tf.function(lambda x, states: model(x, states, training=False), reduce_retracing=True)
        states = model.zero_states(1)
        for x, y in stream_batches(files, vocab):
            logits, states = step(x, states)
            s, u = sum_up(logits, y)
            sums += s.numpy()
            unk += int(u)
    else:
        step = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
        windows = data.batched(data.window_dataset(files, vocab, cfg.window, "all"), batch_size)
        for x, y in windows:
            s, u = sum_up(step(x), y)
            sums += s.numpy()
            unk += int(u)
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



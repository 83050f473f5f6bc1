"""``tf.data`` pipelines from text files to batches of token ids.

The notes' objective: windows of ``window`` words predict the next word.  Files are
read line by line with ``TextLineDataset`` and tokenized with the same rule as the
vocabulary builder (:func:`lm_app.text.tf_tokenize`), so memory stays flat for any
corpus size, no one-hot tensor is ever built, and a window never spans two files.

The validation split takes every ``period``-th block of consecutive windows
(period 5 = the notes' 4:1 split).  Windows that overlap the other split at a
block edge are dropped, so no validation word is seen as training input.

The standard objective reads the corpus as one stream instead
(:func:`token_ids`, :func:`batchify`, :func:`stream_chunks`): ``batch_size``
contiguous rows, read ``bptt`` tokens at a time.  Its ids are held as one int32
array, four bytes a token.
"""
import os

import numpy as np
import tensorflow as tf
import tensorflow_text as tf_text

from . import text
from .errors import UsageError

LINES_PER_BATCH = 512  # lines tokenized per string-op call


def lookup_table(vocab):
    """Token -> id (``<unk>`` for anything else), built from the in-memory vocabulary."""
    init = tf.lookup.KeyValueTensorInitializer(
        tf.constant(vocab.tokens), tf.range(len(vocab.tokens), dtype=tf.int32))
    return tf.lookup.StaticHashTable(init, default_value=text.UNK_ID)


def file_ids(path, table, mode):
    """A file as a stream of 1-D id tensors, one per batch of lines."""
    lines = tf.data.TextLineDataset(path).batch(LINES_PER_BATCH)
    return lines.map(lambda batch: table.lookup(text.tf_tokenize(batch, mode).flat_values))


def file_windows(path, table, mode, window):
    """All ``[window + 1]`` id windows of one file, in order, as ``[n, window + 1]`` blocks.

    A scan carries the last ``window`` ids of a block into the next, so windows
    straddling two blocks of lines are not lost.
    """
    def step(tail, ids):
        joined = tf.concat([tail, ids], axis=0)
        windows = tf_text.sliding_window(joined, window + 1, axis=0)
        return joined[-window:], windows

    start = tf.zeros([0], tf.int32)
    return file_ids(path, table, mode).scan(start, step)


def estimate_words(files):
    """A cheap guess at the corpus size (about 5.5 bytes per English word) for block sizes."""
    return sum(os.path.getsize(f) for f in files) / 5.5


def default_block(files, window, period):
    """About ten train/validation cycles over the corpus, never blocks shorter than 8 windows."""
    return int(max(8 * window, min(10_000, estimate_words(files) // (10 * period))))


def window_dataset(files, vocab, window=5, split="train", valid_fraction=0.2, block=None, targets=1):
    """Unbatched ``(ids[window], next_id)`` pairs of one split, in corpus order.

    ``split`` is ``"train"``, ``"valid"`` or ``"all"``.  With ``targets`` > 1 the
    label is the next ``targets`` ids (for the seq2seq model).
    """
    if window <= 0:
        raise UsageError("--window must be positive")
    if split not in ("train", "valid", "all"):
        raise ValueError(split)
    period = round(1 / valid_fraction) if valid_fraction > 0 else 0
    if valid_fraction > 0 and period < 2:
        raise UsageError("--valid-fraction must be at most 0.5")
    span = window + targets - 1  # a window and its labels cover span + 1 tokens
    block = block or default_block(files, span, max(period, 1))
    table = lookup_table(vocab)

    ds = tf.data.Dataset.from_tensor_slices(list(files)).flat_map(
        lambda path: file_windows(path, table, vocab.mode, span))

    if split != "all" and period:
        def number(count, windows):
            n = tf.shape(windows, out_type=tf.int64)[0]
            return count + n, (count + tf.range(n), windows)

        def select(index, windows):
            part = (index // block) % period
            in_valid = part == period - 1
            at_edge = (index % block < span) & (in_valid | (part == 0))
            wanted = in_valid if split == "valid" else ~in_valid
            return tf.boolean_mask(windows, wanted & ~at_edge)

        ds = ds.scan(tf.constant(0, tf.int64), number).map(select)
    elif split == "valid":
        ds = ds.take(0)
    if targets == 1:
        return ds.unbatch().map(lambda w: (w[:window], w[window]))
    return ds.unbatch().map(lambda w: (w[:window], w[window:]))


def batched(ds, batch_size, shuffle=False, seed=None, shuffle_buffer=10_000):
    """Shuffle, batch and prefetch."""
    if batch_size <= 0:
        raise UsageError("--batch-size must be positive")
    if shuffle:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    return without_autotune(ds.batch(batch_size).prefetch(2))


def without_autotune(ds):
    """Fixed buffers instead of autotuning, which stalls for seconds at epoch ends in TF 2.21."""
    options = tf.data.Options()
    options.autotune.enabled = False
    options.deterministic = True
    return ds.with_options(options)


def window_splits(files, vocab, window=5, batch_size=128, valid_fraction=0.2, seed=None):
    """The training and validation batches of the windowed objective."""
    train = batched(window_dataset(files, vocab, window, "train", valid_fraction),
                    batch_size, shuffle=True, seed=seed)
    valid = batched(window_dataset(files, vocab, window, "valid", valid_fraction), batch_size)
    return train, valid


def count_batches(ds):
    """Batches in a finite dataset (one pass over it), for progress bars and empty checks."""
    return int(ds.reduce(tf.constant(0, tf.int64), lambda n, _: n + 1))




def token_ids(files, vocab):
    """Every token id of the files, in order, as one int32 array."""
    table = lookup_table(vocab)
    ds = tf.data.Dataset.from_tensor_slices(list(files)).flat_map(
        lambda path: file_ids(path, table, vocab.mode))
    parts = [ids.numpy() for ids in ds]
    return np.concatenate(parts) if parts else np.zeros([0], np.int32)


def split_stream(ids, valid_fraction=0.2, cycles=10):
    """Training and validation streams: every ``period``-th of ``period * cycles`` contiguous blocks is held out."""
    period = max(2, round(1 / valid_fraction))
    block = max(1, len(ids) // (period * cycles))
    part = (np.arange(len(ids)) // block) % period
    return ids[part != period - 1], ids[part == period - 1]


def batchify(ids, rows):
    """``rows`` contiguous rows of equal length (PyTorch's ``batchify``); the ragged tail is dropped."""
    if rows <= 0:
        raise UsageError("--batch-size must be positive")
    length = len(ids) // rows
    return np.asarray(ids[:rows * length], np.int32).reshape(rows, length)


def count_chunks(rows, bptt):
    return max(0, -(-(rows.shape[1] - 1) // bptt))


def stream_chunks(rows, bptt):
    """``(x, y)`` chunks of at most ``bptt`` steps; ``y`` is ``x`` shifted by one token."""
    rows_t = tf.constant(rows)
    length = rows.shape[1]

    def chunk(start):
        size = tf.minimum(tf.constant(bptt, tf.int64), length - 1 - start)
        return rows_t[:, start:start + size], rows_t[:, start + 1:start + 1 + size]

    return without_autotune(tf.data.Dataset.range(0, max(length - 1, 0), bptt).map(chunk).prefetch(2))

"""``tf.data`` pipelines from text files to batches of token ids.

The notes' objective: windows of ``window`` words predict the next word.  Files are
read in blocks of lines with the vocabulary's encoding (:func:`file_lines`) and
tokenized with the same rule as the vocabulary builder
(:func:`lm_app.text.tf_tokenize`), so memory stays flat for any corpus size
(a line too long to hold is cut between words; only a small corpus is kept in
memory, :class:`CorpusWindows`), no one-hot tensor is ever built, and a window
never spans two files.

The corpus is cut into blocks of consecutive windows, in cycles of train,
validation and test blocks (8:1:1 by default, :func:`split_cycle`).  Windows
that overlap another part at a block edge are dropped, so no validation or test
word is seen as training input.  The test part is scored once, at the end: it
neither picks the weights nor drives early stopping or the learning rate.

The standard objective reads the corpus as one stream instead
(:func:`token_ids`, :func:`split_stream`, :func:`batchify`, :func:`stream_chunks`):
``batch_size`` contiguous rows, read ``bptt`` tokens at a time.  Its ids are
held as one int32 array, four bytes a token.
"""
import os

import numpy as np
import tensorflow as tf

from . import corpus, text
from .config import TEST, TRAIN, VALID, split_cycle

LINES_PER_BATCH = 512  # lines tokenized per string-op call
PARTS = {"train": TRAIN, "valid": VALID, "test": TEST}


def lookup_table(vocab):
    """Token -> id (``<unk>`` for anything else), built from the in-memory vocabulary."""
    init = tf.lookup.KeyValueTensorInitializer(
        tf.constant(vocab.tokens), tf.range(len(vocab.tokens), dtype=tf.int32))
    return tf.lookup.StaticHashTable(init, default_value=text.UNK_ID)


@tf.autograph.experimental.do_not_convert  # it holds a generator: AutoGraph would only warn
def file_lines(path, vocab):
    """``(lines, whole)`` batches of a file's lines in UTF-8, decoded as build-dict decoded them.

    The vocabulary's ``--encoding`` applies (bad bytes are replaced, or dropped
    under ``--errors ignore``: a run must not stop half-way for one byte).
    Lines come from :func:`lm_app.corpus.read_blocks`, which cuts a very long
    line between words; ``whole`` is false for its pieces but the last.
    """
    encoding = vocab.meta.get("encoding", "utf-8")
    errors = "ignore" if vocab.meta.get("errors") == "ignore" else "replace"

    def lines(name):
        for block, _, whole in corpus.read_blocks(os.fsdecode(name), encoding, errors):
            if not block:
                continue
            pieces = block.encode("utf-8", "surrogatepass").split(b"\n")
            if block.endswith("\n"):
                pieces.pop()
            ends = np.ones(len(pieces), bool)
            ends[-1] = whole
            for i in range(0, len(pieces), LINES_PER_BATCH):
                yield pieces[i:i + LINES_PER_BATCH], ends[i:i + LINES_PER_BATCH]

    return tf.data.Dataset.from_generator(
        lines, args=(path,), output_signature=(tf.TensorSpec([None], tf.string),
                                               tf.TensorSpec([None], tf.bool)))


def line_tokens(lines, whole, mode):
    """The tokens of a batch of lines, flat; a piece of a longer line gets no ``<eos>``."""
    tokens = text.tf_tokenize(lines, mode)
    if mode != "pretokenized":
        return tokens.flat_values
    cut = tf.boolean_mask(tokens.row_limits() - 1, ~whole)  # where each cut piece's <eos> is
    keep = tf.tensor_scatter_nd_update(tf.ones_like(tokens.flat_values, tf.bool), cut[:, None],
                                       tf.zeros_like(cut, tf.bool))
    return tf.boolean_mask(tokens.flat_values, keep)


def file_ids(path, table, vocab):
    """A file as a stream of 1-D id tensors, one per batch of lines."""
    return file_lines(path, vocab).map(
        lambda lines, whole: table.lookup(line_tokens(lines, whole, vocab.mode)))


def file_windows(path, table, vocab, window):
    """All ``[window + 1]`` id windows of one file, in order, as ``[n, window + 1]`` blocks.

    A scan carries the last ``window`` ids of a block into the next, so windows
    straddling two blocks of lines are not lost.
    """
    def step(tail, ids):
        joined = tf.concat([tail, ids], axis=0)
        windows = tf.signal.frame(joined, window + 1, 1, axis=0)  # core TF: importing tensorflow_text costs memory
        return joined[-window:], windows

    start = tf.zeros([0], tf.int32)
    return file_ids(path, table, vocab).scan(start, step)


def estimate_words(files):
    """A cheap guess at the corpus size (about 5.5 bytes per English word) for block sizes."""
    return sum(os.path.getsize(f) for f in files) / 5.5


def default_block(files, window, period):
    """About ten cycles of parts over the corpus, never blocks shorter than 8 windows."""
    return int(max(8 * window, min(10_000, estimate_words(files) // (10 * period))))


# A corpus whose windows fit in this many bytes is read and tokenized once, by the count
# before training; every later pass (epochs, evaluations) reads them from memory.  A
# larger corpus is streamed from its files on every pass, in flat memory.
CACHE_BYTES = 64 << 20


class CorpusWindows:
    """Every part's windows from one pipeline, traced once.

    The parts are masks over the same numbered windows, so building and tracing
    the reading, tokenizing and windowing steps once serves the training part,
    the held-out parts and the count.  With ``keep`` (training), a corpus small
    enough for :data:`CACHE_BYTES` is kept in memory after its first pass.
    """

    def __init__(self, files, vocab, window=5, valid_fraction=0.1, test_fraction=0.1, block=None, targets=1,
                 keep=False):
        self.window, self.targets = window, targets
        self.numbered, self.in_part = _numbered_windows(files, vocab, window, valid_fraction, test_fraction,
                                                        block, targets)
        span = window + targets - 1
        if keep and estimate_words(files) * (4 * (span + 1) + 8) <= CACHE_BYTES:  # int32 ids, int64 index
            self.numbered = self.numbered.cache()

    def dataset(self, split="train"):
        """Unbatched ``(ids[window], next_id)`` pairs of one part, in corpus order.

        ``split`` is ``"train"``, ``"valid"``, ``"test"`` or ``"all"``.  With
        ``targets`` > 1 the label is the next ``targets`` ids (for the seq2seq model).
        """
        assert split == "all" or split in PARTS, split
        if split != "all":
            ds = self.numbered.map(lambda index, windows: tf.boolean_mask(windows, self.in_part(index, PARTS[split])))
        else:
            ds = self.numbered.map(lambda index, windows: windows)
        window = self.window
        if self.targets == 1:
            return ds.unbatch().map(lambda w: (w[:window], w[window]))
        return ds.unbatch().map(lambda w: (w[:window], w[window:]))

    def counts(self):
        """The windows of every part, ``{"train": n, "valid": n, "test": n, "all": n}``, in one pass over the files.

        What :meth:`dataset` would yield for each ``split``, without reading
        the corpus once per part.
        """
        names = list(PARTS)

        def add(counts, numbered):
            index, _ = numbered
            parts = [tf.math.count_nonzero(self.in_part(index, PARTS[name]), dtype=tf.int64) for name in names]
            return counts + tf.stack([*parts, tf.size(index, out_type=tf.int64)])

        counts = self.numbered.reduce(tf.zeros([len(names) + 1], tf.int64), add).numpy()
        return dict(zip([*names, "all"], map(int, counts)))


def window_dataset(files, vocab, window=5, split="train", valid_fraction=0.1, test_fraction=0.1,
                   block=None, targets=1):
    """One part's windows (:meth:`CorpusWindows.dataset`), read from the files."""
    return CorpusWindows(files, vocab, window, valid_fraction, test_fraction, block, targets).dataset(split)


def _numbered_windows(files, vocab, window, valid_fraction, test_fraction, block, targets):
    """``(index, windows)`` blocks of the corpus's windows, and ``in_part(index, part)``: which are the part's.

    Windows that share words with a block of another part are in no part.
    """
    assert window > 0, window  # --window: TrainConfig.validate
    cycle = split_cycle(valid_fraction, test_fraction)
    span = window + targets - 1  # a window and its labels cover span + 1 tokens
    block = block or default_block(files, span, len(cycle))
    table = lookup_table(vocab)
    parts = tf.constant(cycle, tf.int64)

    def number(count, windows):
        n = tf.shape(windows, out_type=tf.int64)[0]
        return count + n, (count + tf.range(n), windows)

    def in_part(index, part):
        own = tf.gather(parts, (index // block) % len(cycle))
        previous = tf.gather(parts, (index // block - 1) % len(cycle))
        at_edge = (index % block < span) & (own != previous)  # shares words with the block before
        return (own == part) & ~at_edge

    ds = tf.data.Dataset.from_tensor_slices(list(files)).flat_map(
        lambda path: file_windows(path, table, vocab, span))
    return fixed_pipeline(ds.scan(tf.constant(0, tf.int64), number)), in_part


def batched(ds, batch_size, shuffle=False, seed=None, shuffle_buffer=10_000):
    """Shuffle, batch and prefetch."""
    assert batch_size > 0, batch_size  # --batch-size: TrainConfig.validate
    if shuffle:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    return fixed_pipeline(ds.batch(batch_size).prefetch(2))


def fixed_pipeline(ds):
    """``ds`` as written: fixed buffers, no autotuning, no graph rewrites.

    Autotuning stalls for seconds at epoch ends in TF 2.21.  tf.data's default
    rewrites (fusions, parallel maps) are redone each time an iterator is made, so
    every epoch, evaluation and count paid a fixed cost for them, and these
    pipelines ran no faster with them (slower, on evaluate's windows).
    """
    options = tf.data.Options()
    options.autotune.enabled = False
    options.deterministic = True
    options.experimental_optimization.apply_default_optimizations = False
    return ds.with_options(options)


def token_ids(files, vocab):
    """Every token id of the files, in order, as one int32 array."""
    table = lookup_table(vocab)
    ds = tf.data.Dataset.from_tensor_slices(list(files)).flat_map(
        lambda path: file_ids(path, table, vocab))
    parts = [ids.numpy() for ids in fixed_pipeline(ds)]
    return np.concatenate(parts) if parts else np.zeros([0], np.int32)


def split_stream(ids, valid_fraction=0.1, test_fraction=0.1, cycles=10):
    """Training, validation and test streams: ``cycles`` cycles of contiguous blocks (see :func:`split_cycle`)."""
    cycle = split_cycle(valid_fraction, test_fraction)
    block = max(1, len(ids) // (len(cycle) * cycles))
    # Slices of the blocks, not a part index per token (int64: twice the ids' own memory).
    blocks = [(cycle[i % len(cycle)], start) for i, start in enumerate(range(0, len(ids), block))]
    return tuple(np.concatenate([ids[:0]] + [ids[start:start + block] for part, start in blocks if part == p])
                 for p in (TRAIN, VALID, TEST))


def batchify(ids, rows):
    """``rows`` contiguous rows of equal length (PyTorch's ``batchify``); the ragged tail is dropped."""
    assert rows > 0, rows  # --batch-size: TrainConfig.validate
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

    return fixed_pipeline(tf.data.Dataset.range(0, max(length - 1, 0), bptt).map(chunk).prefetch(2))

"""The serving SavedModel: raw text in, the top-k next words out.

Everything a caller needs is inside the folder: the normalisation (core string
ops), the last-``window``-words rule, the vocabulary (an asset) and the network.
A process that imports only ``tensorflow`` can serve it, and so can
``saved_model_cli`` or TensorFlow Serving.
"""
import os
import shutil
from pathlib import Path

import tensorflow as tf

from . import text
from .atomic import atomic_path
from .corpus import meta_path
from .errors import UsageError

TAIL_BYTES = 4096  # at most this much of a long text is read: far more than any window needs
SAVED_MODEL_ENTRIES = ("saved_model.pb", "variables", "assets", "assets.extra", "fingerprint.pb")


class NextWordModule(tf.Module):
    """Raw text -> normalised tokens -> ids -> the network -> the top-k next words.

    A window model reads the last ``window`` tokens, left-padded with
    ``<pad>`` (masked); a stream model reads every token of the text's tail,
    right-padded, and answers from each text's last real position.
    """

    def __init__(self, model, vocab_file, window, mode, k=10, objective="window"):
        super().__init__()
        self.model = model
        # Track every variable the traced call may capture (dropout seeds included).
        self.model_variables = [v.value for v in model.variables]
        self.window = window
        self.mode = mode
        self.objective = objective
        self.vocab_size = sum(1 for _ in open(vocab_file, encoding="utf-8"))
        self.k = min(k, self.vocab_size - 1)
        self.vocab = tf.saved_model.Asset(str(vocab_file))
        line, whole = tf.lookup.TextFileIndex.LINE_NUMBER, 0
        self.word_to_id = tf.lookup.StaticHashTable(
            tf.lookup.TextFileInitializer(self.vocab, tf.string, whole, tf.int64, line, delimiter="\t"),
            default_value=text.UNK_ID)
        self.id_to_word = tf.lookup.StaticHashTable(
            tf.lookup.TextFileInitializer(self.vocab, tf.int64, line, tf.string, whole, delimiter="\t"),
            default_value=text.UNK)

    def token_ids(self, texts):
        """The ids of each text's tokens, as a ragged tensor.

        Only the tail of a long text can matter, so it is cut to its last
        ``TAIL_BYTES`` first, at a word boundary: the time per request does not
        grow with the text.
        """
        length = tf.strings.length(texts)
        tail = tf.strings.substr(texts, tf.maximum(length - TAIL_BYTES, 0),
                                 tf.fill(tf.shape(length), TAIL_BYTES))
        # Drop the first, perhaps partial, word: everything up to the first separator.
        sep = r" \n" if self.mode == "words" else r" \t\n\v\f\r"
        cut = tf.strings.regex_replace(tail, f"^[^{sep}]*[{sep}]", "", replace_global=False)
        texts = tf.where(length > TAIL_BYTES, cut, texts)
        tokens = text.tf_tokenize(texts, self.mode)
        if self.mode == "pretokenized":
            tokens = tokens[:, :-1]  # a prompt continues its line: no <eos> yet
        return self.word_to_id.lookup(tokens)

    def left_padded(self, ids, width):
        """The last ``width`` ids of each row, left-padded with ``<pad>`` (id 0)."""
        ids = ids[:, -width:]
        pad = width - ids.row_lengths()
        padding = tf.RaggedTensor.from_row_lengths(tf.zeros([tf.reduce_sum(pad)], tf.int64), pad)
        return tf.concat([padding, ids], axis=1).to_tensor(shape=[None, width])

    def next_word_logits(self, ids):
        if self.objective == "window":
            return self.model(tf.cast(self.left_padded(ids, self.window), tf.int32), training=False)
        # Causal model: right padding cannot change earlier positions, so read each row's last.
        dense = ids.to_tensor(default_value=text.PAD_ID)
        dense = tf.pad(dense, [[0, 0], [0, tf.maximum(1 - tf.shape(dense)[1], 0)]])
        logits, _ = self.model(tf.cast(dense, tf.int32), training=False)
        last = tf.maximum(ids.row_lengths() - 1, 0)
        return tf.gather(logits, last, batch_dims=1)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serve(self, text_in):
        ids = self.token_ids(text_in)
        probabilities = tf.nn.softmax(self.next_word_logits(ids), axis=-1)
        # <pad> is never a next word; zero it so it cannot appear in the top k.
        not_pad = tf.one_hot(text.PAD_ID, tf.shape(probabilities)[-1], on_value=0.0, off_value=1.0)
        probs, top = tf.math.top_k(probabilities * not_pad, k=self.k)
        return {
            "words": self.id_to_word.lookup(tf.cast(top, tf.int64)),
            "probs": probs,
            "context": self.id_to_word.lookup(self.left_padded(ids, self.window)),
            "probabilities": probabilities,
        }


def export(model, vocab_file, model_dir, window, mode, k=10, objective="window", extra_files=None):
    """Write the SavedModel atomically into ``model_dir``.

    The vocabulary files are copied beside it too, so ``evaluate`` and
    ``--resume`` need nothing outside the folder.  Files that earlier training
    left there (logs, checkpoints, history) are carried into the new folder by
    hard links before the swap, so exporting never loses them.  ``extra_files``
    maps names to bytes written beside the model.
    """
    model_dir = Path(model_dir)
    module = NextWordModule(model, vocab_file, window, mode, k, objective)
    extra = dict(extra_files or {})
    for source in (Path(vocab_file), meta_path(vocab_file)):
        extra["vocab" + source.suffix] = source.read_bytes()
    try:
        _write(module, model_dir, extra)
    except tf.errors.OpError as e:
        raise UsageError(f"cannot write the model to {model_dir}: {e.message}") from None
    return model_dir


def _write(module, model_dir, extra_files):
    with atomic_path(model_dir, directory=True) as tmp:
        tf.saved_model.save(module, str(tmp), signatures={"serving_default": module.serve})
        for name, data in (extra_files or {}).items():
            (tmp / name).write_bytes(data)
        if model_dir.is_dir():
            for entry in model_dir.iterdir():
                if entry.name in SAVED_MODEL_ENTRIES or (tmp / entry.name).exists():
                    continue
                if entry.is_dir():
                    shutil.copytree(entry, tmp / entry.name, copy_function=os.link)
                else:
                    os.link(entry, tmp / entry.name)

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

TAIL_BYTES = 4096  # at most this much of a long text is read: far more than any window needs
SAVED_MODEL_ENTRIES = ("saved_model.pb", "variables", "assets", "assets.extra", "fingerprint.pb")


class NextWordModule(tf.Module):
    def __init__(self, model, vocab_file, window, mode, k=10):
        super().__init__()
        self.model = model
        # Track every variable the traced call may capture (dropout seeds included).
        self.model_variables = [v.value for v in model.variables]
        self.window = window
        self.mode = mode
        self.k = min(k, model.output_shape[-1] - 1)
        self.vocab = tf.saved_model.Asset(str(vocab_file))
        line, whole = tf.lookup.TextFileIndex.LINE_NUMBER, 0
        self.word_to_id = tf.lookup.StaticHashTable(
            tf.lookup.TextFileInitializer(self.vocab, tf.string, whole, tf.int64, line, delimiter="\t"),
            default_value=text.UNK_ID)
        self.id_to_word = tf.lookup.StaticHashTable(
            tf.lookup.TextFileInitializer(self.vocab, tf.int64, line, tf.string, whole, delimiter="\t"),
            default_value=text.UNK)

    def context_ids(self, texts):
        """The last ``window`` token ids of each text, left-padded with ``<pad>`` (id 0).

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
        ids = self.word_to_id.lookup(tokens[:, -self.window:])
        pad = self.window - ids.row_lengths()
        padding = tf.RaggedTensor.from_row_lengths(tf.zeros([tf.reduce_sum(pad)], tf.int64), pad)
        return tf.concat([padding, ids], axis=1).to_tensor(shape=[None, self.window])

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serve(self, text_in):
        ids = self.context_ids(text_in)
        logits = self.model(tf.cast(ids, tf.int32), training=False)
        probabilities = tf.nn.softmax(logits, axis=-1)
        # <pad> is never a next word; zero it so it cannot appear in the top k.
        not_pad = tf.one_hot(text.PAD_ID, tf.shape(probabilities)[-1], on_value=0.0, off_value=1.0)
        probs, top = tf.math.top_k(probabilities * not_pad, k=self.k)
        return {
            "words": self.id_to_word.lookup(tf.cast(top, tf.int64)),
            "probs": probs,
            "context": self.id_to_word.lookup(ids),
            "probabilities": probabilities,
        }


def export(model, vocab_file, model_dir, window, mode, k=10, extra_files=None):
    """Write the SavedModel atomically into ``model_dir``.

    Files that earlier training left in the folder (logs, checkpoints, history)
    are carried into the new folder by hard links before the swap, so exporting
    never loses them.  ``extra_files`` maps names to bytes written beside the model.
    """
    model_dir = Path(model_dir)
    module = NextWordModule(model, vocab_file, window, mode, k)
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
    return model_dir

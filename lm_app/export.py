"""The serving SavedModel: raw text in, the top-k next words out.

Everything a caller needs is inside the folder: the normalisation (core string
ops), the last-``window``-words rule, the vocabulary (an asset) and the network.
A process that imports only ``tensorflow`` can serve it, and so can
``saved_model_cli`` or TensorFlow Serving.
"""
import shutil
import tempfile
from pathlib import Path

import tensorflow as tf

from . import text
from .atomic import atomic_path
from .corpus import meta_path
from .errors import UsageError

TAIL_BYTES = 4096  # at most this much of a long text is read: far more than any window needs
VOCAB_NAME = "vocab.txt"  # the vocabulary in a model folder and its assets, whatever it was called
SAVED_MODEL_ENTRIES = ("saved_model.pb", "variables", "assets", "assets.extra", "fingerprint.pb")
DERIVED = ("model.tflite",)  # converted from the SavedModel: stale once a new model replaces it


class NextWordModule(tf.Module):
    """Raw text -> normalised tokens -> ids -> the network -> the top-k next words.

    A window model reads the last ``window`` tokens, left-padded with
    ``<pad>`` (masked); a stream model reads every token of the text's tail,
    right-padded, and answers from each text's last real position.
    """

    def __init__(self, model, vocab_file, window, mode, k=10, objective="window"):
        super().__init__()
        # The Keras model is held but not tracked: tracked, it brings its own serving function,
        # traced at every export and saved beside the signatures (a second copy of the network
        # that nobody calls).  What the signatures capture is tracked on its own: every
        # variable, dropout seeds included.
        object.__setattr__(self, "model", model)
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

    def next_word_logits(self, ids, context):
        if self.objective == "window":
            return self.model(tf.cast(context, tf.int32), training=False)
        # Causal model: right padding cannot change earlier positions, so read each row's last.
        dense = ids.to_tensor(default_value=text.PAD_ID)
        dense = tf.pad(dense, [[0, 0], [0, tf.maximum(1 - tf.shape(dense)[1], 0)]])
        logits, _ = self.model(tf.cast(dense, tf.int32), training=False)
        last = tf.maximum(ids.row_lengths() - 1, 0)
        return tf.gather(logits, last, batch_dims=1)

    def top_k(self, logits):
        probabilities = tf.nn.softmax(logits, axis=-1)
        # <pad> is never a next word; zero it so it cannot appear in the top k.
        not_pad = tf.one_hot(text.PAD_ID, tf.shape(probabilities)[-1], on_value=0.0, off_value=1.0)
        probs, top = tf.math.top_k(probabilities * not_pad, k=self.k)
        return {"words": self.id_to_word.lookup(tf.cast(top, tf.int64)), "probs": probs,
                "probabilities": probabilities}

    # No AutoGraph where the Python has no control flow on tensors: converting a function and all
    # it calls is a fixed cost paid on every first export, load or trace in a process.
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")], autograph=False)
    def serve(self, text_in):
        ids = self.token_ids(text_in)
        context = self.left_padded(ids, self.window)
        out = {"context": self.id_to_word.lookup(context)}
        if hasattr(self.model, "attend"):  # --arch attention: say which words it looked at
            logits, out["attention"] = self.model.attend(tf.cast(context, tf.int32))
        else:
            logits = self.next_word_logits(ids, context)
        out.update(self.top_k(logits))
        return out


class Seq2SeqModule(NextWordModule):
    """The encoder-decoder: decodes ``target_len`` words greedily inside the graph.

    ``serving_default`` returns the ``continuation`` (words joined by spaces),
    its ``log_prob``, the attention ``weights`` (generated x context words) and
    the first word's top k like the other models.  ``next_log_probs`` scores
    any partial continuation, so ``generate`` can sample or beam-search with
    the same decoder.
    """

    def __init__(self, model, vocab_file, window, mode, k=10, target_len=3):
        super().__init__(model, vocab_file, window, mode, k, "window")
        self.target_len = target_len

    def encode(self, texts):
        ids = self.left_padded(self.token_ids(texts), self.window)
        outputs, states, mask = self.model.encode(tf.cast(ids, tf.int32))
        return ids, outputs, states, mask

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serve(self, text_in):
        ids, outputs, states, mask = self.encode(text_in)
        decoder = self.model.decoder
        batch = tf.shape(ids)[0]
        previous = tf.cast(ids[:, -1], tf.int32)
        context = decoder.initial_context(outputs)
        words = tf.TensorArray(tf.int32, size=self.target_len)
        attention = tf.TensorArray(tf.float32, size=self.target_len)
        log_prob = tf.zeros([batch])
        first_logits = tf.zeros([batch, self.vocab_size])
        for t in tf.range(self.target_len):  # autograph: a tf.while_loop, core ops only
            tf.autograph.experimental.set_loop_options(
                shape_invariants=[(first_logits, tf.TensorShape([None, None]))])
            logits, states, context, weights = decoder.step(previous, states, context, outputs, mask)
            logits = logits + tf.one_hot(text.PAD_ID, self.vocab_size, on_value=-1e9, off_value=0.0)
            if t == 0:
                first_logits = logits
            chosen = tf.argmax(logits, axis=-1, output_type=tf.int32)
            log_prob += tf.gather(tf.nn.log_softmax(logits), chosen, batch_dims=1)
            words = words.write(t, chosen)
            attention = attention.write(t, weights)
            previous = chosen
        chosen = tf.transpose(words.stack())
        strings = self.id_to_word.lookup(tf.cast(chosen, tf.int64))
        out = {
            "continuation": tf.strings.reduce_join(strings, axis=-1, separator=" "),
            "log_prob": log_prob,
            "attention": tf.transpose(attention.stack(), [1, 0, 2]),
            "context": self.id_to_word.lookup(ids),
        }
        out.update(self.top_k(first_logits))
        return out

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text"),
                                  tf.TensorSpec([None, None], tf.string, name="prefix")], autograph=False)
    def next_log_probs(self, text_in, prefix):
        """Log-probabilities of the word after ``prefix`` (words already decoded) for each text."""
        ids, outputs, states, mask = self.encode(text_in)
        prefix_ids = tf.cast(self.word_to_id.lookup(prefix), tf.int32)
        decoder_in = tf.concat([tf.cast(ids[:, -1:], tf.int32), prefix_ids], axis=1)
        logits, _ = self.model.decoder(decoder_in, states, outputs, mask)
        return {"log_probs": tf.nn.log_softmax(logits[:, -1])}


def export(model, vocab_file, model_dir, window, mode, k=10, objective="window", extra_files=None,
           target_len=None, make_module=None):
    """Write the SavedModel atomically into ``model_dir``.

    The vocabulary files are copied beside it too, as ``vocab.txt`` and
    ``vocab.json`` whatever they were called, so ``evaluate`` and ``--resume``
    need nothing outside the folder.  Files that earlier training left there
    (logs, checkpoints, history) are copied into the new folder before the
    swap, so exporting never loses them; copied, not hard-linked, since some
    file systems have no hard links.  What was derived from the previous model
    (``model.tflite``) is not carried: it would not match the new one.
    ``extra_files`` maps names to bytes written beside the model.
    ``make_module(vocabulary asset)``, if given, makes the module of another model family.
    """
    model_dir = Path(model_dir)
    with tempfile.TemporaryDirectory() as staging:
        # An asset keeps its file's name: a copy named VOCAB_NAME makes it assets/vocab.txt.
        asset = Path(staging) / VOCAB_NAME
        shutil.copyfile(vocab_file, asset)
        if make_module:
            module = make_module(asset)
        elif target_len:
            module = Seq2SeqModule(model, asset, window, mode, k, target_len)
        else:
            module = NextWordModule(model, asset, window, mode, k, objective)
        extra = {**(extra_files or {}), VOCAB_NAME: asset.read_bytes(),
                 meta_path(VOCAB_NAME).name: meta_path(vocab_file).read_bytes()}
        try:
            _write(module, model_dir, extra)
        except tf.errors.OpError as e:
            raise UsageError(f"cannot write the model to {model_dir}: {e.message}") from None
    return model_dir


def _write(module, model_dir, extra_files):
    with atomic_path(model_dir, directory=True) as tmp:
        signatures = {"serving_default": module.serve}
        if isinstance(module, Seq2SeqModule):
            signatures["next_log_probs"] = module.next_log_probs
        signatures.update(getattr(module, "more_signatures", {}))
        tf.saved_model.save(module, str(tmp), signatures=signatures)
        for name, data in (extra_files or {}).items():
            (tmp / name).write_bytes(data)
        if model_dir.is_dir():
            for entry in model_dir.iterdir():
                if entry.name in SAVED_MODEL_ENTRIES + DERIVED or (tmp / entry.name).exists():
                    continue
                if entry.is_dir():
                    shutil.copytree(entry, tmp / entry.name)
                else:
                    shutil.copy2(entry, tmp / entry.name)

"""Dialogue corpora: one turn per line, a blank line between dialogues, read with the vocabulary.

Files are read as the language models read them (:func:`lm_app.data.file_lines`:
the vocabulary's encoding, lines cut between words when too long) and
tokenized by the same rule (:func:`lm_app.text.tf_tokenize`).  A line that
is blank in the file (only whitespace) ends a dialogue; a line whose words all
vanish under normalisation is still a turn (an empty one), so the turns keep
their places.

End of turn: the model appends ``</s>`` to every turn, an id just past the
vocabulary (``len(vocab)``).  ``<eos>`` is not reused because build-dict puts
it only in ``--pretokenized`` vocabularies (there it ends each line, and is
dropped here so a turn does not end twice); the vocabulary file keeps its
format and every model of the app reads it alike.  The same ``</s>``
separates the turns of the flat seq2seq input and starts the decoder.

Every turn after the first ``context_turns`` of a dialogue is an example,
with the ``context_turns`` turns before it as context: a context never reaches
into another dialogue.  Turns are stored once, ``[turns, max_words + 1]``;
an example is ``context_turns + 1`` indices into them.
"""
import numpy as np
import tensorflow as tf

from .. import data, text
from ..config import TEST, TRAIN, VALID, split_cycle

PARTS = {"train": TRAIN, "valid": VALID, "test": TEST}


def end_of_turn(vocab_size):
    """The id of ``</s>``: the first after the vocabulary's."""
    return vocab_size


def file_dialogues(path, vocab, table):
    """The dialogues of one file: lists of turns, each a list of token ids (no ``</s>``)."""
    dialogues, turns, piece = [], [], []
    for lines, whole in data.file_lines(path, vocab):
        blank = (tf.strings.strip(lines) == "").numpy()
        tokens = text.tf_tokenize(lines, vocab.mode)
        if vocab.mode == "pretokenized":  # its <eos> ends the line, which </s> marks already
            tokens = tokens[:, :-1]
        ids = table.lookup(tokens)
        flat, splits = ids.flat_values.numpy(), ids.row_splits.numpy()
        for i, (is_blank, is_whole) in enumerate(zip(blank, whole.numpy())):
            piece.extend(flat[splits[i]:splits[i + 1]].tolist())
            if not is_whole:  # a long line cut in pieces: one turn all the same
                continue
            if is_blank and not piece:
                if turns:
                    dialogues.append(turns)
                turns = []
            else:
                turns.append(piece)
            piece = []
    if piece:
        turns.append(piece)
    if turns:
        dialogues.append(turns)
    return dialogues


def read_dialogues(files, vocab):
    """Every dialogue of the files, in order; a file's end ends its last dialogue."""
    table = data.lookup_table(vocab)
    return [d for path in files for d in file_dialogues(path, vocab, table)]


class Examples:
    """Turns as a padded id array and the examples as rows of indices into it.

    ``turns[i]`` is turn ``i``: its first ``max_words`` ids, ``</s>``, then ``<pad>``.
    ``examples[j]`` is ``context_turns`` context turns' indices, then the response's.
    """

    def __init__(self, dialogues, context_turns, max_words, eot):
        rows, examples = [], []
        for turns in dialogues:
            first = len(rows)
            for turn in turns:
                ids = turn[:max_words] + [eot]
                rows.append(ids + [text.PAD_ID] * (max_words + 1 - len(ids)))
            examples.extend(range(first + i - context_turns, first + i + 1)
                            for i in range(context_turns, len(turns)))
        self.turns = np.asarray(rows, np.int32).reshape(-1, max_words + 1)
        self.examples = np.asarray([list(e) for e in examples], np.int32).reshape(-1, context_turns + 1)

    def __len__(self):
        return len(self.examples)

    def batches(self, batch_size, shuffle=False, seed=None):
        """``(context [batch, turns, words], response [batch, words])`` batches."""
        turns = tf.constant(self.turns)
        ds = tf.data.Dataset.from_tensor_slices(self.examples)
        if shuffle:
            ds = ds.shuffle(len(self.examples), seed=seed, reshuffle_each_iteration=True)

        def gather(rows):
            ids = tf.gather(turns, rows)
            return ids[:, :-1], ids[:, -1]

        return data.fixed_pipeline(ds.batch(batch_size).map(gather).prefetch(2))


def split_dialogues(dialogues, part, valid_fraction, test_fraction):
    """The dialogues of one part (``train``, ``valid``, ``test``), dealt out in the split cycle.

    Whole dialogues go to a part, so no held-out turn is ever a training context.
    """
    cycle = split_cycle(valid_fraction, test_fraction)
    return [d for i, d in enumerate(dialogues) if cycle[i % len(cycle)] == PARTS[part]]

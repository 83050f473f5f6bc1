"""The normalisation rule, written once and applied both in Python and in TensorFlow.

The notes' rule: lowercase, newline -> space, delete every character outside
``[a-z '-]``, collapse spaces, drop words that start with ``-``.  ``DELETE_PATTERN``
is valid both for Python's ``re`` and for RE2 (``tf.strings.regex_replace``), so
the two implementations cannot drift apart; a test checks they agree.

``pretokenized`` mode is for Penn-Treebank-style files: split on ASCII whitespace,
keep tokens exactly, end every line with ``<eos>``.
"""
import collections
import re

PAD, UNK, EOS = "<pad>", "<unk>", "<eos>"
RESERVED = (PAD, UNK)
PAD_ID, UNK_ID = 0, 1

MODES = ("words", "pretokenized")
DELETE_PATTERN = r"[^a-z '\-]"
# ``tf.strings.split(sep=None)`` splits on exactly these (absl::ascii_isspace);
# Python's ``str.split()`` would also split on Unicode spaces, so we name them.
ASCII_WHITESPACE = " \t\n\v\f\r"

_delete = re.compile(DELETE_PATTERN)
_whitespace = re.compile("[" + re.escape(ASCII_WHITESPACE) + "]+")


def tokenize(text, mode="words"):
    """The tokens of ``text`` (any number of lines) under ``mode``.

    In ``pretokenized`` mode every line, including a last one without a newline,
    ends with ``<eos>``.
    """
    if mode == "pretokenized":
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        tokens = []
        for line in lines:
            tokens.extend(t for t in _whitespace.split(line) if t)
            tokens.append(EOS)
        return tokens
    cleaned = _delete.sub("", text.lower().replace("\n", " "))
    return [w for w in cleaned.split(" ") if w and not w.startswith("-")]


def has_words(text, mode="words"):
    """Whether ``text`` keeps a token under ``mode``: a prompt without one gives the model no context."""
    return any(token != EOS for token in tokenize(text, mode))


# The words rule on UTF-8 bytes, derived from DELETE_PATTERN: every byte of a non-ASCII
# character is >= 0x80 (outside the kept set), so deleting the bytes the pattern deletes
# deletes exactly the characters it deletes.  The newline becomes a space instead.
_NEWLINE_TO_SPACE = bytes.maketrans(b"\n", b" ")
_DELETE = bytes(b for b in range(256) if b != ord("\n") and _delete.fullmatch(chr(b)))


def count_tokens(text, mode="words"):
    """``collections.Counter(tokenize(text, mode))`` but faster, keyed by UTF-8 bytes.

    build-dict spends its time here.  Splitting bytes makes cheaper objects than
    splitting a ``str``, and words starting with ``-`` are dropped from the
    counts afterwards instead of being tested one by one.  A test checks it
    against :func:`tokenize` on arbitrary text.
    """
    if mode == "pretokenized":
        counts = collections.Counter(text.encode("utf-8", "surrogatepass").split())
        if eos_lines(text):
            counts[EOS.encode()] += eos_lines(text)
        return counts
    data = text.lower().encode("utf-8", "surrogatepass").translate(_NEWLINE_TO_SPACE, _DELETE)
    counts = collections.Counter(data.split())
    for word in [w for w in counts if w.startswith(b"-")]:
        del counts[word]
    return counts


def eos_lines(text):
    """The ``<eos>`` tokens of pretokenized ``text``: one per line, a last one without a newline included."""
    return text.count("\n") + (1 if text and not text.endswith("\n") else 0)


def tf_tokenize(lines, mode="words"):
    """TensorFlow twin of :func:`tokenize` for a 1-D batch of lines (no newlines).

    Returns a ``tf.RaggedTensor`` of tokens, one row per line.  Core ops only, so it
    can live inside an exported SavedModel.  Invalid UTF-8 becomes U+FFFD first,
    as Python's ``errors="replace"`` does, and is then deleted by the rule.
    """
    import tensorflow as tf

    lines = tf.strings.unicode_transcode(
        lines, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD
    )
    if mode == "pretokenized":
        tokens = tf.strings.split(lines)
        eos = tf.fill(tf.stack([tf.shape(lines)[0], 1]), EOS)
        return tf.concat([tokens, tf.RaggedTensor.from_tensor(eos)], axis=1)
    # ICU's lowercasing stops at a NUL byte; NUL is deleted by the rule anyway.
    text = tf.strings.regex_replace(lines, "\\x00", "")
    text = tf.strings.lower(text, encoding="utf-8")
    text = tf.strings.regex_replace(text, "\n", " ")
    text = tf.strings.regex_replace(text, DELETE_PATTERN, "")
    words = tf.strings.split(text, sep=" ")
    keep = tf.logical_and(
        tf.strings.length(words) > 0, tf.strings.substr(words, 0, 1) != "-"
    )
    return tf.ragged.boolean_mask(words, keep)

"""Word vectors on disk: the word2vec text format, the TensorBoard projector's files, and how a query word is read.

The text format (header ``count dim``, then ``word v1 ... vd`` per line) is
what gensim's ``KeyedVectors.load_word2vec_format(path, binary=False)``, the
original C tool and most other libraries exchange, so the vectors leave
lm_app without a converter.  Floats are printed with 9 significant digits,
enough for every float32 to read back bit for bit.

NumPy only: ``train --init-embedding`` checks a file before TensorFlow loads.
"""
import numpy as np

from ..errors import UsageError
from ..text import tokenize

FLOAT = "%.9g"  # the fewest digits that round-trip every float32
PROJECTOR_CONFIG = "projector_config.pbtxt"  # the name TensorBoard's projector plugin looks for
PROJECTOR_TENSOR, PROJECTOR_METADATA = "vectors.tsv", "metadata.tsv"


def write_vectors(path, words, vectors):
    """``vectors[i]`` as word ``words[i]``'s line, after the ``count dim`` header."""
    count, dim = vectors.shape
    assert count == len(words), (count, len(words))
    row = " ".join([FLOAT] * dim)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(f"{count} {dim}\n")
        for word, vector in zip(words, vectors.astype(np.float32).tolist()):
            f.write(f"{word} {row % tuple(vector)}\n")


def unit_vectors(vectors):
    """Each row scaled to length 1, as gensim's ``get_normed_vectors`` (a zero row stays zero rather than NaN)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.where(norms > 0, norms, 1)).astype(np.float32)


def _lines(path):
    try:
        with open(path, encoding="utf-8") as f:
            yield from f
    except FileNotFoundError:
        raise UsageError(f"no word vectors file {path}") from None
    except IsADirectoryError:
        raise UsageError(f"{path} is a folder, not a word vectors file") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path} is not UTF-8 text: not a word2vec text file") from None


def _header(path, lines):
    line = next(lines, None)
    if line is None:
        raise UsageError(f"{path} is empty: not a word vectors file")
    parts = line.split()
    if len(parts) != 2 or not all(p.isdigit() for p in parts) or int(parts[1]) == 0:
        raise UsageError(f"{path} is not in the word2vec text format: its first line should be "
                         f"'count dimension', got {line.strip()[:40]!r}")
    return int(parts[0]), int(parts[1])


def read_header(path):
    """``(count, dim)`` from the first line alone: a quick check of a large file's dimension."""
    return _header(path, _lines(path))


def read_vectors(path):
    """``(words, float32 matrix)``; any malformed line is a one-line UsageError naming it."""
    lines = _lines(path)
    count, dim = _header(path, lines)
    words, values, seen = [], [], set()
    for number, line in enumerate(lines, start=2):
        parts = line.rstrip().split(" ")  # as gensim splits: a word may hold any other character
        if parts == [""] and number > count + 1:
            continue  # blank lines after the last vector
        if len(parts) != dim + 1:
            raise UsageError(f"{path} line {number}: expected a word and {dim} numbers, "
                             f"got {len(parts)} fields")
        if parts[0] in seen:
            raise UsageError(f"{path} line {number}: the word {parts[0]!r} appears twice")
        seen.add(parts[0])
        words.append(parts[0])
        values.extend(parts[1:])
    if len(words) != count:
        raise UsageError(f"{path} has {len(words)} vectors, but its header says {count}")
    try:
        matrix = np.array(values, dtype=np.float32).reshape(count, dim)
    except ValueError as e:
        raise UsageError(f"{path}: a vector holds something that is not a number ({e})") from None
    return words, matrix


def write_projector(folder, words, vectors):
    """The TensorBoard projector's files, so ``tensorboard --logdir FOLDER`` shows the embedding.

    The paths in the config are relative to it (the plugin resolves them so),
    so the folder can be moved.  A single-column metadata file has no header.
    """
    np.savetxt(folder / PROJECTOR_TENSOR, vectors, fmt=FLOAT, delimiter="\t")
    (folder / PROJECTOR_METADATA).write_text("".join(w + "\n" for w in words), encoding="utf-8")
    (folder / PROJECTOR_CONFIG).write_text(
        "embeddings {\n"
        '  tensor_name: "word2vec"\n'
        f'  tensor_path: "{PROJECTOR_TENSOR}"\n'
        f'  metadata_path: "{PROJECTOR_METADATA}"\n'
        "}\n", encoding="utf-8")


# How a query word ("King", "king's!") finds its vector: by lm_app's normalisation when the
# vocabulary was built with it, else (a --pretokenized vocabulary) exactly as typed.
WORDS_RULE, EXACT = "words", "exact"


def query_rule(words):
    """``words`` when every word is its own normalisation (a plain-text vocabulary), else ``exact``."""
    return WORDS_RULE if all(tokenize(w) == [w] for w in words) else EXACT


def normalise_query(word, rule):
    """The vocabulary word a typed query stands for; several words or none give a string never in it."""
    return " ".join(tokenize(word)) if rule == WORDS_RULE else word

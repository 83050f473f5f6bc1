"""The word2vec output folder: what training leaves there, and how the commands that read it check it.

One folder serves every use of the vectors: ``vectors.txt`` for other tools
(gensim reads it unchanged) and for ``train --init-embedding``; the
SavedModel at the folder's root (as ``train`` puts the language model's) for
``similar`` and ``analogy``; the projector files for TensorBoard; and
``word2vec.json``, the training settings, which marks the folder as a
word2vec model.
"""
import json
from pathlib import Path

import numpy as np

from ..atomic import read_json
from ..errors import UsageError
from .vectors import PROJECTOR_METADATA, query_rule, write_projector, write_vectors

VECTORS = "vectors.txt"
META = "word2vec.json"
SAVED_MODEL = "saved_model.pb"


def write_outputs(folder, words, vectors, meta):
    """Fill the empty ``folder``; the caller renames it into place, so a half-written one is never seen.

    ``words`` are the vocabulary's words in its order (no ``<pad>``/``<unk>``),
    ``vectors`` their float32 rows, ``meta`` the training settings.
    """
    folder = Path(folder)
    vectors = np.asarray(vectors, dtype=np.float32)
    assert vectors.ndim == 2 and len(words) == len(vectors), (vectors.shape, len(words))
    rule = query_rule(words)
    write_vectors(folder / VECTORS, words, vectors)
    write_projector(folder, words, vectors)
    summary = {"count": len(words), "dim": vectors.shape[1], "query_rule": rule}
    (folder / META).write_text(json.dumps(dict(meta, **summary), indent=2, sort_keys=True, default=str) + "\n",
                               encoding="utf-8")
    from .export import export_saved_model  # TensorFlow: loaded only once training is over

    export_saved_model(folder, folder / PROJECTOR_METADATA, vectors, rule)


def read_meta(model_dir, needs=SAVED_MODEL):
    """The folder's ``word2vec.json``, once the folder is known to be a word2vec model with ``needs`` in it.

    Checked before TensorFlow loads, so a wrong ``--model-dir`` is answered at once.
    """
    model_dir = Path(model_dir)
    hint = f"train one with `python -m lm_app word2vec --out {model_dir}`"
    if not model_dir.is_dir():
        raise UsageError(f"no word2vec model in {model_dir}: {hint}")
    if not (model_dir / META).is_file():
        raise UsageError(f"{model_dir} is not a word2vec model folder (no {META}): {hint}")
    if not (model_dir / needs).exists():
        raise UsageError(f"{model_dir} has no {needs}: the word2vec folder is incomplete; {hint}")
    return read_json(model_dir / META, "word2vec settings")


def read_words(model_dir):
    """The vocabulary of the folder's vectors, in their order."""
    path = Path(model_dir) / PROJECTOR_METADATA
    try:
        return path.read_text(encoding="utf-8").split("\n")[:-1]  # as TensorFlow's line reader splits
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"cannot read the words of {model_dir} ({path}): {e}") from None

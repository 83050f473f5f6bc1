"""``train --init-embedding``: a language model's word embedding started from word2vec vectors.

Vectors learned on a large corpus carry what a small language-model corpus
cannot teach its embedding.  The vocabulary's words that the file has start
from their vectors; the others (and ``<pad>``) keep their random start.  A
seq2seq model reads words in two places, the encoder and the decoder: both
embeddings start from the vectors.  ``--freeze-embedding`` keeps them fixed,
so training fits the rest of the network around them.  The rules on the
flags (the dimension, one-hot, ``--tied``) are TrainConfig.validate's.
"""
import numpy as np

from .text import PAD_ID


def read(path, tokens, dim):
    """``(vocabulary ids, their vectors)`` for the words of ``tokens`` that the vectors file holds."""
    from .word2vec.vectors import read_vectors

    words, vectors = read_vectors(path)
    assert vectors.shape[1] == dim, (vectors.shape, dim)  # TrainConfig.check_init_embedding's rule
    index = {w: i for i, w in enumerate(words)}
    ids = [i for i, token in enumerate(tokens) if token in index and i != PAD_ID]
    return np.array(ids, dtype=np.int64), vectors[[index[tokens[i]] for i in ids]].reshape(-1, dim)


def embedding_variables(model):
    """Every word embedding of ``model``: the variables of its ``Embedding`` layers named ``embedding``."""
    found = [v for v in model.variables if v.path.split("/")[-2:] == ["embedding", "embeddings"]]
    assert found, [v.path for v in model.variables]
    return found


def apply(model, ids, vectors, freeze=False):
    """Write ``vectors`` into rows ``ids`` of each embedding; ``freeze`` takes them out of training."""
    for variable in embedding_variables(model):
        value = variable.numpy()
        value[ids] = vectors
        variable.assign(value)
        if freeze:
            variable.trainable = False

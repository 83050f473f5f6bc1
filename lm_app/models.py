"""Turn a configuration (``--arch`` and sizes) into a Keras model of logits over the vocabulary."""
import keras

from .errors import UsageError
from .layers import GRUCell, LSTMCell, SimpleRNNCell

CELLS = {"rnn": SimpleRNNCell, "lstm": LSTMCell, "gru": GRUCell}


def make_cell(arch, units, dropout=0.0, seed=None, peephole=False):
    if arch not in CELLS:
        raise UsageError(f"unknown --arch {arch!r} (choose from {', '.join(sorted(CELLS))})")
    if peephole and arch != "lstm":
        raise UsageError("--peephole needs --arch lstm")
    extra = {"peephole": True} if peephole else {}
    return CELLS[arch](units, dropout=dropout, seed=seed, **extra)


def build_model(vocab_size, arch="rnn", embedding=64, hidden=128, layers=1, dropout=0.0,
                seed=None, peephole=False):
    """Embedding -> ``layers`` recurrent layers -> dense logits for the next word.

    The embedding replaces the notes' one-hot input: the same maths as a one-hot
    vector times a weight matrix, without building the vector.  Id 0 (``<pad>``)
    is masked, so short prompts padded on the left do not disturb the state.
    """
    for name, value in (("embedding", embedding), ("hidden", hidden), ("layers", layers)):
        if value <= 0:
            raise UsageError(f"--{name} must be positive")
    if not 0 <= dropout < 1:
        raise UsageError("--dropout must be in [0, 1)")
    ids = keras.Input(shape=(None,), dtype="int32", name="ids")
    x = keras.layers.Embedding(vocab_size, embedding, mask_zero=True, name="embedding")(ids)
    for i in range(layers):
        last = i == layers - 1
        x = keras.layers.RNN(make_cell(arch, hidden, dropout, seed, peephole), return_sequences=not last,
                             name=f"{arch}_{i + 1}")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, seed=seed)(x)
    logits = keras.layers.Dense(vocab_size, name="logits")(x)
    return keras.Model(ids, logits, name=f"{arch}_lm")

"""``export --format tflite``: the next-word network as a TensorFlow Lite model.

Input ``ids`` int32 ``[1, window]`` (the last ``window`` token ids, left-padded
with ``<pad>`` = 0, ids = line numbers of ``vocab.txt``), output
``probabilities`` float32 ``[1, vocab]`` (softmax applied).  The text
normalisation and the vocabulary lookup stay in Python (:func:`window_ids`):
TFLite's builtin ops have no regex or hash table, and the app on the device
owns its text handling anyway.

The network is rebuilt from the model folder's ``config.json`` and best
weights.  Two changes make it convert to builtin ops only, with the same maths:
the recurrent loops are unrolled (the window is fixed, so ``keras.layers.RNN``
can unroll; TFLite cannot read the weights captured inside a ``while`` loop),
and our LSTM's fused fast path is switched off.  Variables are frozen into
constants before conversion.  Only if the builtin ops are not enough does it
retry with ``SELECT_TF_OPS`` and say so (the app then needs the Flex delegate).

TensorFlow is imported inside the functions, so ``--help`` stays fast.
"""
from pathlib import Path

from .errors import UsageError

SUPPORTED = ("rnn", "lstm", "gru", "attention")
CHECK_TOLERANCE = 1e-4  # the converted model must match Keras this closely at export time


def check_supported(model_dir):
    """The model's settings, or a UsageError naming the kinds that convert."""
    from .atomic import read_json

    config = read_json(Path(model_dir) / "config.json", "model settings")
    kinds = f"window models of --arch {', '.join(SUPPORTED)}"
    if config.get("objective", "window") != "window":
        raise UsageError(f"cannot export a --objective {config['objective']} model to TFLite: "
                         f"its state runs across calls; supported: {kinds}")
    if config.get("arch") not in SUPPORTED:
        why = (" (its decoder feeds back its own output)" if config.get("arch") == "seq2seq" else "")
        raise UsageError(f"cannot export an --arch {config.get('arch')} model to TFLite{why}; "
                         f"supported: {kinds}")
    return config


def export_tflite(model_dir, out=None):
    """Convert the model of ``model_dir`` and write it atomically to ``out``.

    Returns the path, its size, the window, the vocabulary size and whether
    ``SELECT_TF_OPS`` was needed.
    """
    import keras
    import numpy as np
    import tensorflow as tf

    from .atomic import atomic_path
    from .evaluate import load_trained
    from .layers import LSTM

    model_dir = Path(model_dir)
    check_supported(model_dir)
    model, cfg, vocab = load_trained(model_dir)
    out = Path(out) if out else model_dir / "model.tflite"
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, LSTM):
            layer.fused = False
        if isinstance(layer, keras.layers.RNN):
            layer.unroll = True

    @tf.function(input_signature=[tf.TensorSpec([1, cfg.window], tf.int32, name="ids")])
    def next_word(ids):
        return {"probabilities": tf.nn.softmax(model(ids, training=False), axis=-1)}

    content, select = _convert(next_word.get_concrete_function())
    # A check on padding and real words both: the converted model must give the same answer.
    real = [1 + i % (len(vocab) - 1) for i in range(max(cfg.window - 1, 1))]
    sample = np.array([[0] * (cfg.window - len(real)) + real], np.int32)
    got = run_tflite(content, sample)
    want = next_word(tf.constant(sample))["probabilities"].numpy()
    if not np.allclose(got, want, atol=CHECK_TOLERANCE):
        raise UsageError(f"the TFLite conversion of {model_dir} does not reproduce the model "
                         f"(largest difference {np.nanmax(np.abs(got - want)):.2g}); not written")
    with atomic_path(out) as tmp:
        tmp.write_bytes(content)
    return {"path": str(out), "bytes": len(content), "window": cfg.window,
            "vocab_size": len(vocab), "select_tf_ops": select}


def _convert(concrete):
    """TFLite flatbuffer bytes, builtin ops first; (bytes, whether SELECT_TF_OPS was needed)."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    from .process import quiet_stderr

    # Frozen here, not by the converter: its own freezing left READ_VARIABLE ops in the
    # attention model, which then fail (or give NaN) when the interpreter runs.
    frozen_graph = convert_variables_to_constants_v2(concrete)

    # Freezing names the outputs output_0...; this wrapper gives them their names back.
    @tf.function(input_signature=concrete.structured_input_signature[0])
    def frozen_named(*args):
        return tf.nest.pack_sequence_as(concrete.structured_outputs, frozen_graph(*args),
                                        expand_composites=True)

    frozen = frozen_named.get_concrete_function()
    first_error = None
    for select in (False, True):
        converter = tf.lite.TFLiteConverter.from_concrete_functions([frozen], tf.Module())
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS] + (
            [tf.lite.OpsSet.SELECT_TF_OPS] if select else [])
        try:
            with quiet_stderr():  # the converter's C++ side logs pages of MLIR passes
                return converter.convert(), select
        except Exception as e:  # ConverterError, or a lowering error from MLIR
            first_error = first_error or e
    message = " ".join(str(first_error).split())[:300]
    raise UsageError(f"TFLite cannot convert this model: {message}")


def run_tflite(content, ids):
    """Probabilities from a TFLite interpreter for ``ids`` [1, window] (for checks and tests)."""
    import numpy as np

    from .process import quiet_stderr

    with quiet_stderr():  # the interpreter's C++ side logs its delegate
        runner = interpreter(content).get_signature_runner()
        return runner(ids=np.asarray(ids, np.int32))["probabilities"]


def interpreter(content):
    """LiteRT's interpreter (``pip install ai-edge-litert``), the supported one, where installed.

    Else TensorFlow's own copy, which warns that LiteRT replaces it.
    """
    import warnings

    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import tensorflow as tf

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return tf.lite.Interpreter(model_content=content)
    return Interpreter(model_content=content)


def window_ids(text_in, vocab, window):
    """The ids the SavedModel would feed the network: the last ``window`` tokens, left-padded with 0.

    The Python side of the same normalisation rule (:mod:`lm_app.text`); ``vocab``
    is a :class:`lm_app.corpus.Vocabulary` (``Vocabulary.load(model_dir / "vocab.txt")``).
    """
    from . import text

    tokens = text.tokenize(text_in, vocab.mode)
    if vocab.mode == "pretokenized":
        tokens = tokens[:-1]  # a prompt continues its line: no <eos> yet
    ids = vocab.ids(tokens)[-window:] if tokens else []
    return [text.PAD_ID] * (window - len(ids)) + ids

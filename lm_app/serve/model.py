"""The loaded SavedModel as the server sees it: one batch call and TF Serving's metadata answer."""
from .requests import SIGNATURE, TURNS

SERVED_OUTPUTS = ("words", "probs", "continuation", "log_prob", "response")
VERSION = "1"  # a plain model folder has one version, as TF Serving's <model>/1/


class ServedModel:
    """The loaded signature, its metadata, and a thread-safe batch call."""

    def __init__(self, loaded, name, model_dir=None):
        import tensorflow as tf

        from ..predict import model_mode

        self.loaded = loaded  # keeps the signature's resources alive
        self.signature = loaded.signatures[SIGNATURE]
        self.name = name
        self.mode = model_mode(model_dir) if model_dir else "words"
        self.tensor_names = _tensor_names(model_dir) if model_dir else {}
        outputs = self.signature.structured_outputs
        self.outputs = [k for k in SERVED_OUTPUTS if k in outputs]
        [self.input_name] = self.signature.structured_input_signature[1]  # text, or a dialogue model's turns
        signature, served, name = self.signature, self.outputs, self.input_name

        @tf.function(input_signature=[tf.TensorSpec([None, None] if name == TURNS else [None], tf.string)])
        def answer(texts):
            """Only the outputs the answer carries: the graph drops the rest (context, attention)."""
            out = signature(**{name: texts})
            return {k: out[k] for k in served}

        # The concrete function: calling the tf.function would look its trace up again on every call.
        self.answer = answer.get_concrete_function()

    def __call__(self, texts):
        """One prediction dict per text, or per list of turns (run in the worker thread)."""
        import tensorflow as tf

        if self.input_name == TURNS:  # rows of turns padded with empty strings, as the signature takes them
            width = max(len(turns) for turns in texts)
            texts = [turns + [b""] * (width - len(turns)) for turns in texts]
        out = self.answer(tf.constant(texts, tf.string))
        columns = [_jsonable(out[k].numpy()) for k in self.outputs]  # one conversion per output, not per row
        return [dict(zip(self.outputs, row)) for row in zip(*columns)]

    def metadata(self):
        """TF Serving's GetModelMetadata answer, from the loaded signature's structure."""
        _, inputs = self.signature.structured_input_signature
        outputs = self.signature.structured_outputs
        names = self.tensor_names
        signature = {
            "inputs": {k: _tensor_info(v, names.get(("inputs", k), "")) for k, v in inputs.items()},
            "outputs": {k: _tensor_info(v, names.get(("outputs", k), "")) for k, v in outputs.items()},
            "method_name": "tensorflow/serving/predict",
        }
        return {"model_spec": {"name": self.name, "signature_name": "", "version": VERSION},
                "metadata": {"signature_def": {"signature_def": {SIGNATURE: signature}}}}


def _tensor_names(model_dir):
    """The graph tensor names of the serving signature, as saved_model.pb records them.

    The loaded signature knows the keys, dtypes and shapes but not these names,
    which TF Serving's metadata also reports; {} if the file cannot be read.
    """
    from pathlib import Path

    from tensorflow.core.protobuf import saved_model_pb2

    try:
        saved = saved_model_pb2.SavedModel.FromString((Path(model_dir) / "saved_model.pb").read_bytes())
        signature = saved.meta_graphs[0].signature_def[SIGNATURE]
    except Exception:  # unreadable here but loadable: the names are a nicety
        return {}
    return {**{("inputs", k): v.name for k, v in signature.inputs.items()},
            **{("outputs", k): v.name for k, v in signature.outputs.items()}}


def _tensor_info(spec, name):
    from tensorflow.core.framework import types_pb2

    shape = spec.shape
    dims = [] if shape.rank is None else [{"size": str(-1 if d is None else d), "name": ""}
                                          for d in shape.as_list()]
    return {"dtype": types_pb2.DataType.Name(spec.dtype.as_datatype_enum),
            "tensor_shape": {"dim": dims, "unknown_rank": shape.rank is None}, "name": name}


def _jsonable(array):
    """A numpy output as JSON values: its strings decoded, in one ``tolist`` (no walk over numbers)."""
    value = array.tolist()
    return _decoded(value) if array.dtype == object else value


def _decoded(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, list):
        return [_decoded(v) for v in value]
    return value

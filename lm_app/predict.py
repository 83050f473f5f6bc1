"""Next-word prediction from an exported SavedModel alone (no training code imported)."""
from pathlib import Path

from .atomic import recover
from .errors import UsageError


def load(model_dir):
    """Load the serving signature, turning a missing or broken folder into a UsageError."""
    import tensorflow as tf

    model_dir = Path(model_dir)
    recover(model_dir)
    if not (model_dir / "saved_model.pb").is_file():
        raise UsageError(f"no trained model in {model_dir} (run train first, or pass --model-dir)")
    try:
        return tf.saved_model.load(str(model_dir)).signatures["serving_default"]
    except Exception as e:  # TensorFlow raises many types for a damaged folder
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UsageError(f"cannot load the model in {model_dir}: {first}") from None


def predict(serve, texts, top_k=5):
    """For each text: the words it used, the top-k next words and their probabilities."""
    import tensorflow as tf

    for t in texts:
        if not t.strip():
            raise UsageError("the text to predict from is empty")
    # surrogateescape: bytes that were not UTF-8 on the command line reach the model as
    # bytes, and the model's own normaliser replaces them.
    out = serve(text=tf.constant([t.encode("utf-8", errors="surrogateescape") for t in texts]))
    available = out["words"].shape[-1]
    if top_k > available:
        raise UsageError(f"--top-k is at most {available} for this model (set at export)")
    results = []
    for text, context, words, probs in zip(texts, out["context"].numpy(), out["words"].numpy(),
                                           out["probs"].numpy()):
        top = [{"word": w.decode(), "prob": float(p)} for w, p in zip(words[:top_k], probs[:top_k])]
        results.append({
            "input": text,
            "context": [c.decode() for c in context if c != b"<pad>"],
            "prediction": top[0]["word"],
            "top_k": top,
        })
    return results


def format_result(result):
    """The human-readable report: the prediction, then a table of the top words."""
    lines = [f"Prediction: {result['input'].strip()} {result['prediction']}",
             f"Context used: {' '.join(result['context']) or '(none)'}",
             "",
             f"{'rank':>4}  {'word':<20} {'probability':>11}"]
    for rank, item in enumerate(result["top_k"], 1):
        bar = "#" * round(item["prob"] * 40)
        lines.append(f"{rank:>4}  {item['word']:<20} {item['prob']:>11.4f}  {bar}")
    return "\n".join(lines)

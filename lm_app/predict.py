"""Next-word prediction from an exported SavedModel alone (no training code imported)."""
import io
import json
from pathlib import Path

import numpy as np

from .atomic import recover
from .config import PredictConfig
from .errors import UsageError

DEFAULT_TOP_K = 5
SHOWN_CHARS = 200  # of a long text only its end is echoed back: the model reads only its last words


def load_model(model_dir):
    """Load a SavedModel, turning a missing or broken folder into a UsageError."""
    import tensorflow as tf

    model_dir = Path(model_dir)
    recover(model_dir)
    if not (model_dir / "saved_model.pb").is_file():
        raise UsageError(f"no trained model in {model_dir} (run train first, or pass --model-dir)")
    try:
        loaded = tf.saved_model.load(str(model_dir))
        loaded.signatures["serving_default"]
        return loaded
    except Exception as e:  # TensorFlow raises many types for a damaged folder
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UsageError(f"cannot load the model in {model_dir}: {first}") from None


def vocabulary(loaded):
    """The words of a loaded model by id, from its own vocabulary asset (whatever the file was called)."""
    path = Path(loaded.vocab.asset_path.numpy().decode())
    return [line.split("\t", 1)[0] for line in path.read_text(encoding="utf-8").splitlines()]


def model_mode(model_dir):
    """How the model tokenizes (its vocabulary's meta file beside it); ``words`` if that is missing."""
    try:
        return json.loads((Path(model_dir) / "vocab.json").read_text(encoding="utf-8"))["mode"]
    except (OSError, ValueError, KeyError, TypeError):
        return "words"


def next_word_model(loaded, model_dir):
    """``loaded``, unless it is a dialogue model (it takes turns, not a text): refused in one line."""
    if "turns" in loaded.signatures["serving_default"].structured_input_signature[1]:
        raise UsageError(f"{model_dir} holds a dialogue model: use respond or chat")
    return loaded


def load(model_dir):
    """The serving signature (it keeps the loaded model alive)."""
    return next_word_model(load_model(model_dir), model_dir).signatures["serving_default"]


def shown(text):
    """The end of ``text`` as echoed back: its last words (whitespace collapsed), "..." where it was cut."""
    tail = text[-SHOWN_CHARS - 1:]  # one character more, to see whether the first word is whole
    words = tail.split()
    cut = len(text) > SHOWN_CHARS
    if cut and len(words) > 1 and not tail[0].isspace():
        words = words[1:]
    return ("... " if cut else "") + " ".join(words)


def predict(serve, texts, top_k=None):
    """For each text: its end (``input``), the words it used, the top-k next words and their probabilities.

    ``top_k`` None: five, or all the model exports if that is fewer, so the
    default never asks a model trained with ``--top-k 3`` for more.
    """
    PredictConfig(top_k).validate()
    import tensorflow as tf

    for t in texts:
        if not t.strip():
            raise UsageError("the text to predict from is empty")
    # surrogateescape: bytes that were not UTF-8 on the command line reach the model as
    # bytes, and the model's own normaliser replaces them.
    out = serve(text=tf.constant([t.encode("utf-8", errors="surrogateescape") for t in texts]))
    available = out["words"].shape[-1]
    if top_k is None:
        top_k = min(DEFAULT_TOP_K, available)
    elif top_k > available:
        raise UsageError(f"--top-k is at most {available} for this model (set at export)")
    results = []
    for row, text in enumerate(texts):
        words, probs = out["words"].numpy()[row], out["probs"].numpy()[row]
        top = [{"word": w.decode(), "prob": float(p)} for w, p in zip(words[:top_k], probs[:top_k])]
        context = out["context"].numpy()[row]
        keep = context != b"<pad>"
        result = {"input": shown(text), "context": [c.decode() for c in context[keep]],
                  "prediction": top[0]["word"], "top_k": top}
        if "attention" in out:  # (context,) for attention models, (generated, context) for seq2seq
            weights = out["attention"].numpy()[row]
            result["attention"] = weights[..., keep].tolist()
        if "continuation" in out:
            result["continuation"] = out["continuation"].numpy()[row].decode()
            result["log_prob"] = float(out["log_prob"].numpy()[row])
        results.append(result)
    return results


def format_result(result, show_attention=False):
    """The human-readable report: the prediction, then a table of the top words."""
    lines = [f"Prediction: {result['input']} {result['prediction']}"]
    if "continuation" in result:
        lines.append(f"Continuation: {result['input']} {result['continuation']} "
                     f"(log-probability {result['log_prob']:.2f})")
    lines += [f"Context used: {' '.join(result['context']) or '(none)'}", "",
              f"{'rank':>4}  {'word':<20} {'probability':>11}"]
    for rank, item in enumerate(result["top_k"], 1):
        bar = "#" * round(item["prob"] * 40)
        lines.append(f"{rank:>4}  {item['word']:<20} {item['prob']:>11.4f}  {bar}")
    if show_attention and "attention" in result:
        weights = np.atleast_2d(result["attention"])
        lines += ["", "Attention over the context" + (" (first word)" if len(weights) > 1 else "") + ":"]
        for word, weight in zip(result["context"], weights[0]):
            lines.append(f"      {word:<20} {weight:>11.4f}  {'#' * round(weight * 40)}")
    return "\n".join(lines)


def attention_png(result):
    """PNG bytes of the attention weights: generated words (rows) x context words (columns)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    weights = np.atleast_2d(result["attention"])
    rows = result.get("continuation", result["prediction"]).split(" ")[:len(weights)]
    fig, ax = plt.subplots(figsize=(1.2 + 0.9 * len(result["context"]), 1.2 + 0.6 * len(rows)))
    image = ax.imshow(weights, cmap="viridis", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(len(result["context"])), result["context"], rotation=45, ha="right")
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xlabel("context word")
    ax.set_ylabel("predicted word")
    for (r, c), w in np.ndenumerate(weights):
        ax.text(c, r, f"{w:.2f}", ha="center", va="center", color="white" if w < 0.5 else "black")
    fig.colorbar(image, ax=ax, label="attention weight")
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=100)
    plt.close(fig)
    return out.getvalue()

"""``respond`` and ``chat``: the next turn of a conversation from a dialogue SavedModel.

The model is checked from its ``config.json`` before TensorFlow loads, so a
language model's folder is refused at once; the answer itself comes from the
SavedModel's own signatures (what ``serve`` and any plain-TensorFlow caller use).
"""
import json
from pathlib import Path

from ..errors import UsageError
from ..text import has_words


def check_model(model_dir):
    """Refuse a folder that holds no dialogue model, in one line naming what it holds."""
    config = Path(model_dir) / "config.json"
    try:
        objective = json.loads(config.read_text(encoding="utf-8")).get("objective")
    except (OSError, ValueError, AttributeError):
        raise UsageError(f"no trained dialogue model in {model_dir} (train one with --objective dialogue, "
                         "or pass --model-dir)") from None
    if objective != "dialogue":
        raise UsageError(f"{model_dir} holds a --objective {objective} model, not a dialogue model "
                         "(train one with --objective dialogue)")


def check_some(turns):
    """Refuse an empty conversation: there is nothing to answer."""
    if not turns:
        raise UsageError("no turns: give the conversation so far, one argument per turn (or - for stdin)")
    return turns


def check_words(turns, mode="words"):
    """The turns as given; refuses turns that all lose every word to normalisation."""
    if not any(has_words(turn, mode) for turn in turns):
        raise UsageError("the turns have no words: they are empty after normalisation")
    return turns


def context_turns(model_dir):
    """How many turns the model reads (its run's ``--context-turns``)."""
    return json.loads((Path(model_dir) / "config.json").read_text(encoding="utf-8"))["context_turns"]


def chat(model_dir, lines, write, mode="words"):
    """Answer each line of ``lines`` in turn, keeping the last ``--context-turns`` turns (both sides').

    ``/reset`` forgets them; a line without words is skipped with a note.  The
    model is loaded once, so each answer costs one call of its signature.
    """
    import tensorflow as tf

    from ..predict import load_model

    serve = load_model(model_dir).signatures["serving_default"]
    keep, history = context_turns(model_dir), []
    for line in lines:
        line = line.strip()
        if line == "/reset":
            history = []
            write("(context cleared)")
        elif not has_words(line, mode):
            write("(no words: say something, or /reset)")
        else:
            history = (history + [line])[-keep:]
            answer = serve(turns=tf.constant([history]))["response"].numpy()[0].decode("utf-8", "replace")
            write(answer)
            history = (history + [answer])[-keep:]


def respond(model_dir, turns, samples=0, temperature=1.0):
    """``[{"response", "log_prob"}]``: the greedy answer, or ``samples`` answers drawn at ``temperature``."""
    import tensorflow as tf

    from ..predict import load_model

    loaded = load_model(model_dir)
    batch = tf.constant([list(turns)] * max(samples, 1))
    if samples:
        out = loaded.signatures["sample"](turns=batch, temperature=tf.constant(temperature, tf.float32))
    else:
        out = loaded.signatures["serving_default"](turns=batch)
    return [{"response": r.decode("utf-8", "replace"), "log_prob": float(lp)}
            for r, lp in zip(out["response"].numpy(), out["log_prob"].numpy())]

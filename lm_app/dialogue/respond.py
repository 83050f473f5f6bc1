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


def setting(model_dir, name):
    """One of the model's run settings (its config.json, which check_model has read already)."""
    return json.loads((Path(model_dir) / "config.json").read_text(encoding="utf-8"))[name]


def context_turns(model_dir):
    """How many turns the model reads (its run's ``--context-turns``)."""
    return setting(model_dir, "context_turns")


def max_turn_words(model_dir):
    return setting(model_dir, "max_turn_words")


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


def respond(model_dir, turns, samples=0, options=None):
    """``[{"response", "log_prob"}]``: the greedy answer, ``samples`` answers drawn with ``options``, or beam's best.

    ``options`` are :meth:`lm_app.config.GenerateConfig.decoding`'s.  Sampling
    runs word by word through :mod:`lm_app.decoding` (as ``generate`` does)
    on the model's ``next_log_probs``; VHRED's z is drawn once per answer from
    the prior's ``mu`` and ``sigma`` with the same generator, so a seed
    replays the answers exactly.
    """
    import tensorflow as tf

    from ..predict import load_model

    loaded = load_model(model_dir)
    if (options or {}).get("beam"):
        return [beamed(loaded, list(turns), options["beam"], max_turn_words(model_dir))]
    if not samples:
        out = loaded.signatures["serving_default"](turns=tf.constant([list(turns)]))
        return [{"response": out["response"].numpy()[0].decode("utf-8", "replace"),
                 "log_prob": float(out["log_prob"].numpy()[0])}]
    return sampled(loaded, list(turns), samples, options or {}, max_turn_words(model_dir))


def decoder(loaded, turns):
    """``(words by id, </s>'s id, banned ids, prior's mu and sigma, next_log_probs(prefixes, z))`` for one context."""
    import numpy as np
    import tensorflow as tf

    from .. import text
    from ..predict import vocabulary

    words = vocabulary(loaded)
    context = tf.constant([turns])
    prior = {k: v.numpy() for k, v in loaded.signatures["prior"](turns=context).items()}
    signature = loaded.signatures["next_log_probs"]

    def next_log_probs(prefixes, z):
        n, length = len(prefixes), len(prefixes[0])
        prefix = tf.constant([[words[i] for i in ids] for ids in prefixes], tf.string, shape=[n, length])
        return signature(turns=tf.repeat(context, n, axis=0), prefix=prefix,
                         z=tf.constant(np.repeat(z, n, axis=0), tf.float32))["log_probs"].numpy()

    return words, len(words), [text.PAD_ID, text.UNK_ID], prior, next_log_probs


def beamed(loaded, turns, beam, max_words):
    """Beam search's best answer (:func:`lm_app.decoding.beam_search`); VHRED's z is the prior's mean."""
    from .. import decoding

    words, end, banned, prior, next_log_probs = decoder(loaded, turns)
    ids, total = decoding.beam_search(lambda prefixes: next_log_probs(prefixes, prior["mu"]), [], max_words + 1,
                                      beam=beam, banned=banned, end=end)[0]
    return {"response": " ".join(words[i] for i in ids if i != end), "log_prob": total}


def sampled(loaded, turns, samples, options, max_words):
    """``samples`` answers, each word drawn by :func:`lm_app.decoding.sample_next` until ``</s>``."""
    import numpy as np

    from .. import decoding

    words, end, banned, prior, next_log_probs = decoder(loaded, turns)
    rng = np.random.default_rng(options.get("seed"))
    choose = {k: options[k] for k in ("temperature", "top_k", "top_p") if k in options}
    answers = []
    for _ in range(samples):
        z = prior["mu"] + prior["sigma"] * rng.standard_normal(prior["mu"].shape)
        answer, total = [], 0.0
        for _ in range(max_words + 1):
            log_probs = next_log_probs([answer], z)[0]
            token = decoding.sample_next(log_probs, rng, banned=banned, **choose)
            total += float(log_probs[token])
            if token == end:
                break
            answer.append(token)
        answers.append({"response": " ".join(words[i] for i in answer), "log_prob": total})
    return answers

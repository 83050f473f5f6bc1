"""Continuing a text word by word from an exported SavedModel alone (no training code imported).

Every model is decoded through one callback, the log-probabilities of the
next word after each partial continuation, so sampling, top-k, top-p and
beam search (``decoding.py``) work the same for all of them:

* a next-word model is asked about ``prompt + continuation so far``, as the
  notes' decoder feeds each chosen word back;
* a seq2seq model's decoder scores the continuation so far after encoding the
  prompt; past ``target_len`` words the decoded words join the prompt and the
  decoder starts again.
"""
import numpy as np

from . import decoding, predict, text
from .config import check_seed, flag
from .errors import UsageError

SAMPLING = ("temperature", "top_k", "top_p", "seed")  # flags that act only when sampling


def decoding_options(temperature=None, top_k=None, top_p=None, beam=None, greedy=False, seed=None):
    """The keyword arguments of :meth:`Generator.generate`; None means a flag not given.

    A flag given either acts or is refused in one line naming the conflict:
    beam search, ``--greedy`` and ``--temperature 0`` choose without sampling,
    so the sampling flags would do nothing beside them.
    """
    given = {name: value for name, value in dict(temperature=temperature, top_k=top_k, top_p=top_p,
                                                  seed=seed).items() if value is not None}
    if temperature is not None and temperature < 0:
        raise UsageError(f"--temperature must be 0 (greedy) or more, got {temperature}")
    if top_k is not None and top_k < 0:
        raise UsageError(f"--top-k must be 0 (all) or more, got {top_k}")
    if top_p is not None and not 0 < top_p <= 1:
        raise UsageError(f"--top-p must be in (0, 1], got {top_p}")
    if beam is not None and beam < 1:
        raise UsageError(f"--beam must be a positive integer, got {beam} (without --beam it samples)")
    if seed is not None:
        check_seed(seed)
    if beam and greedy:
        raise UsageError("--beam and --greedy do not go together: give one")
    chooser = "--beam" if beam else "--greedy" if greedy else "--temperature 0" if temperature == 0 else None
    if chooser:
        ignored = [name for name in SAMPLING if name in given and not (chooser == "--temperature 0"
                                                                       and name == "temperature")]
        if ignored:
            raise UsageError(f"{chooser} does not sample: {flag(ignored[0])} would be ignored")
    return {"temperature": 1.0 if temperature is None else temperature, "top_k": top_k or 0,
            "top_p": 1.0 if top_p is None else top_p, "beam": beam or 0, "greedy": greedy, "seed": seed}


class Generator:
    def __init__(self, model_dir):
        import tensorflow as tf

        self.tf = tf
        self.loaded = predict.load_model(model_dir)  # kept: the signatures need it alive
        self.signatures = self.loaded.signatures
        self.serve = self.signatures["serving_default"]
        self.seq2seq = "next_log_probs" in self.signatures
        self.words = predict.vocabulary(self.loaded)
        self.index = {w: i for i, w in enumerate(self.words)}
        self.banned = [self.index[t] for t in (text.PAD, text.UNK) if t in self.index]
        self.target_len = None
        if self.seq2seq:
            probe = self.serve(text=tf.constant(["x"]))
            self.target_len = int(probe["attention"].shape[1])

    def join(self, prompt, ids):
        return " ".join([prompt.strip(), *(self.words[i] for i in ids)]).strip()

    def next_log_probs(self, prompt):
        tf = self.tf

        def callback(sequences):
            if not self.seq2seq:
                texts = [self.join(prompt, seq) for seq in sequences]
                probs = self.serve(text=tf.constant(texts))["probabilities"].numpy()
                return np.log(np.maximum(probs, 1e-30))
            done = len(sequences[0]) - len(sequences[0]) % self.target_len
            texts = [self.join(prompt, seq[:done]) for seq in sequences]
            prefix = [[self.words[i] for i in seq[done:]] for seq in sequences]
            out = self.signatures["next_log_probs"](
                text=tf.constant(texts), prefix=tf.constant(prefix, dtype=tf.string, shape=[len(texts), len(prefix[0])]))
            return out["log_probs"].numpy()

        return callback

    def generate(self, prompt, words=10, temperature=1.0, top_k=0, top_p=1.0, beam=0, seed=None,
                 greedy=False):
        if not prompt.strip():
            raise UsageError("the text to continue is empty")
        if words <= 0:
            raise UsageError("--words must be positive")
        callback = self.next_log_probs(prompt)
        if beam:
            ids, log_prob = decoding.beam_search(callback, [], words, beam=beam, banned=self.banned)[0]
        else:
            ids, log_prob = decoding.generate(callback, [], words, seed=seed, temperature=temperature,
                                              top_k=top_k, top_p=top_p, greedy=greedy,
                                              banned=self.banned)
        continuation = [self.words[i] for i in ids]
        return {"input": predict.shown(prompt), "continuation": " ".join(continuation), "words": continuation,
                "log_prob": float(log_prob)}

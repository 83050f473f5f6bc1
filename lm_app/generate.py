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
from .config import GenerateConfig
from .errors import UsageError


class Generator:
    def __init__(self, model_dir):
        import tensorflow as tf

        self.tf = tf
        self.loaded = predict.next_word_model(predict.load_model(model_dir), model_dir)  # kept: signatures need it
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

    def generate(self, prompt, words=10, temperature=None, top_k=None, top_p=None, beam=None, seed=None,
                 greedy=False):
        """``words`` words after ``prompt``; the options are ``generate``'s flags, None where not given."""
        if not prompt.strip():
            raise UsageError("the text to continue is empty")
        options = GenerateConfig(words, temperature, top_k, top_p, beam, greedy, seed).validate().decoding()
        callback = self.next_log_probs(prompt)
        beam = options.pop("beam")
        if beam:
            ids, log_prob = decoding.beam_search(callback, [], words, beam=beam, banned=self.banned)[0]
        else:
            ids, log_prob = decoding.generate(callback, [], words, banned=self.banned, **options)
        continuation = [self.words[i] for i in ids]
        return {"input": predict.shown(prompt), "continuation": " ".join(continuation), "words": continuation,
                "log_prob": float(log_prob)}

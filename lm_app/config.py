"""Run settings, kept apart from the training code so the CLI can show defaults without importing TensorFlow.

Every rule a run's settings must obey lives in :meth:`TrainConfig.validate`,
so the CLI, a resumed run and a script calling ``train()`` are checked alike,
each rule with one message that names the flag.
"""
import dataclasses
import json
import math
import os
from fractions import Fraction

from .corpus import find_files, meta_path
from .dialogue import settings as dialogue
from .errors import UsageError

SEED_MAX = 2**32 - 1  # NumPy's generators (sampling, Keras' set_random_seed) take [0, 2**32)
# The defaults that depend on the objective (a setting not given is None until then).  Dividing
# the rate after a stalled epoch is the standard protocol's recipe; the notes' window runs keep
# Adam's rate constant.  Dialogue models train as the HRED/VHRED papers' code does, Adam with the
# gradient clipped at 1 and a smaller rate: at 0.005 unclipped, HRED's utterance encoder saturates
# and every context reaches the decoder as the same vector.  A dialogue corpus is small, so its
# batches are too: at 128 responses a batch its models stop at a unigram plateau (README).
OBJECTIVE_DEFAULTS = {
    "batch_size": {"window": 128, "stream": 128, "dialogue": 8},
    "learning_rate": {"window": 0.005, "stream": 0.005, "dialogue": 0.001},
    "clip_norm": {"window": 0.0, "stream": 0.0, "dialogue": 1.0},
    "lr_decay": {"window": 1.0, "stream": 4.0, "dialogue": 1.0},
}
CHOICES = {
    "arch": ("rnn", "lstm", "gru", "attention", "seq2seq", "hred", "vhred"),
    "cell": ("rnn", "lstm", "gru"),
    "score": ("general", "additive", "dot"),
    "objective": ("window", "stream", "dialogue"),
    "optimizer": ("adam", "sgd"),
    "strategy": ("default", "mirrored", "multi-worker"),
    "softmax": ("full", "adaptive"),
    "posterior_reads": ("mean", "rnn"),
}
POSITIVE = ("window", "bptt", "hidden", "layers", "epochs", "patience", "batch_size",
            "top_k", "target_len")

ONEHOT = "onehot"  # --embedding onehot: the notes' one-hot input (kept as this word in config.json)
ONEHOT_ONLY = "--embedding onehot acts with --objective window and --arch rnn, lstm or gru only"
# The notes' predictor, as configured there.  The notes split 4:1 into train and test only;
# here the fifth picks the weights (validation), and there is no test part.  Their unknown-word
# threshold of 3 is build-dict's default --min-count, a setting of the vocabulary, not of train.
PRESETS = {
    "notes": {"embedding": ONEHOT, "arch": "rnn", "hidden": 30, "layers": 1, "optimizer": "adam",
              "learning_rate": 0.005, "batch_size": 128, "valid_fraction": 0.2, "test_fraction": 0.0,
              "window": 5, "lr_decay": 1.0, "objective": "window"},
}


def per_objective(name):
    """A default that depends on ``--objective``, as ``--help`` says it: ``0.005; 0.001 with dialogue``."""
    values = OBJECTIVE_DEFAULTS[name]
    others = [f"{value:g} with {objective}" for objective, value in values.items() if value != values["window"]]
    return "; ".join([f"{values['window']:g}", *others])


def preset_flags(name):
    """The flags a preset stands for, as they would be typed."""
    return " ".join(f"{flag(k)} {v:g}" if isinstance(v, float) else f"{flag(k)} {v}"
                    for k, v in PRESETS[name].items())


def embedding_size(text):
    """``--embedding``: a size, or ``onehot``; the range is checked by :meth:`TrainConfig.validate`."""
    return ONEHOT if text == ONEHOT else int(text)


def cutoff_list(text):
    """``--cutoffs 2000,10000``: integers; their order and range are checked by :meth:`TrainConfig.validate`."""
    return tuple(int(part) for part in text.split(","))


def vocabulary_size(path):
    """The size recorded beside the vocabulary ``path``, or None when it cannot be read (loading it says why)."""
    try:
        return int(json.loads(meta_path(path).read_text(encoding="utf-8"))["size"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


TRAIN, VALID, TEST = 0, 1, 2  # the parts of the corpus, as data.py labels its blocks


def split_cycle(valid_fraction, test_fraction):
    """The parts of one cycle of blocks in order, e.g. 8 x TRAIN, VALID, TEST for 0.1 and 0.1.

    Shares are rounded to fractions with denominators up to 20; the cycle is
    as short as they allow.  Here, not in data.py, so that validate() checks
    the very rule the split uses before TensorFlow loads.
    """
    shares = [Fraction(f).limit_denominator(20) for f in (valid_fraction, test_fraction)]
    if min(shares) < 0 or sum(shares) > Fraction(1, 2):
        raise UsageError("--valid-fraction and --test-fraction must be 0 or more and at most 0.5 "
                         "together (each rounded to twentieths)")
    length = math.lcm(*(s.denominator for s in shares))
    n_valid, n_test = (int(s * length) for s in shares)
    return [TRAIN] * (length - n_valid - n_test) + [VALID] * n_valid + [TEST] * n_test


def flag(name):
    return "--" + name.replace("_", "-")


def check_seed(seed, name="--seed"):
    """The one seed range of ``train`` and ``generate``."""
    if not 0 <= seed <= SEED_MAX:
        raise UsageError(f"{name} must be in [0, {SEED_MAX}], got {seed}")


def check_ranges(settings, ranges):
    """Refuse the first ``(name, ok, rule)`` not ok, as every command words it: ``--name rule, got value``."""
    for name, ok, rule in ranges:
        if not ok:
            raise UsageError(f"{flag(name)} {rule}, got {getattr(settings, name)}")


@dataclasses.dataclass
class TrainConfig:
    """Mirrors the ``train`` flags; saved as ``config.json`` beside the model."""

    corpus: str = "corpus/**/*.txt"
    vocab: str = "saved_models/vocab.txt"
    model_dir: str = "saved_models/lm"
    arch: str = "rnn"
    cell: str = "gru"
    score: str = "general"
    target_len: int = 3
    objective: str = "window"
    valid_corpus: str = ""
    test_corpus: str = ""
    window: int = 5
    bptt: int = 35
    embedding: int = 64  # or ONEHOT
    hidden: int = 128
    layers: int = 1
    peephole: bool = False
    dropout: float = 0.0
    tied: bool = False
    softmax: str = "full"
    cutoffs: tuple = (2000, 10000)  # --softmax adaptive: where the head and each tail cluster end
    optimizer: str = "adam"
    epochs: int = 30
    batch_size: int = None
    learning_rate: float = None  # None (not given): OBJECTIVE_DEFAULTS[...][objective]
    clip_norm: float = None
    lr_decay: float = None
    patience: int = 3
    valid_fraction: float = 0.1
    test_fraction: float = 0.1
    top_k: int = 10
    init_embedding: str = ""  # a word2vec text file the embedding starts from
    freeze_embedding: bool = False
    save_every: int = 0
    strategy: str = "default"
    seed: int = 1234
    preset: str = ""  # recorded; its values are the fields above
    # --objective dialogue (rules: dialogue/settings.py).  The KL weight reaches 1 after 500 steps,
    # about one epoch of the Shakespeare training dialogues at dialogue's --batch-size 8.
    context_turns: int = 2
    max_turn_words: int = 30
    kl_anneal_steps: int = 500
    word_drop: float = 0.25
    kl_free_nats: float = 3.0
    bow_loss: float = 0.0  # off: on the Shakespeare dialogues it did not make z carry the response (README)
    posterior_reads: str = "mean"  # "rnn": the papers' utterance RNN, whose state told z the response's length

    def __post_init__(self):
        for name, per_objective in OBJECTIVE_DEFAULTS.items():
            if getattr(self, name) is None:
                setattr(self, name, per_objective.get(self.objective, per_objective["window"]))
        if isinstance(self.cutoffs, list):  # as config.json and run.json keep it
            self.cutoffs = tuple(self.cutoffs)

    @classmethod
    def from_dict(cls, stored):
        """Settings saved by a run (config.json, run.json), ignoring keys that are not settings."""
        known = {f.name for f in dataclasses.fields(cls)}
        if stored.get("arch") == "vhred":  # saved before --posterior-reads: the RNN was all there was
            stored = {"posterior_reads": "rnn", **stored}
        return cls(**{k: v for k, v in stored.items() if k in known})

    @classmethod
    def from_flags(cls, typed):
        """The flags typed, then the preset's values for the fields not typed, then the defaults.

        A typed ``--valid-corpus`` or ``--test-corpus`` replaces the preset's share
        of that part, rather than clashing with it.
        """
        preset = dict(PRESETS.get(typed.get("preset"), {}))
        for part in ("valid", "test"):
            if typed.get(f"{part}_corpus"):
                preset.pop(f"{part}_fraction", None)
        return cls.from_dict({**preset, **typed})

    def validate(self):
        """Refuse, in one line naming the flag, a value out of range or a flag this run would ignore."""
        for name, choices in CHOICES.items():
            value = getattr(self, name)
            if value not in choices:
                raise UsageError(f"{flag(name)} must be one of {', '.join(choices)}, got {value!r}")
        for name in POSITIVE:
            if getattr(self, name) <= 0:
                raise UsageError(f"{flag(name)} must be a positive integer, got {getattr(self, name)}")
        if self.embedding != ONEHOT and self.embedding <= 0:
            raise UsageError(f"--embedding must be a positive integer or {ONEHOT}, got {self.embedding}")
        if self.preset and self.preset not in PRESETS:
            raise UsageError(f"--preset must be one of {', '.join(PRESETS)}, got {self.preset!r}")
        ranges = [
            ("learning_rate", self.learning_rate > 0, "must be positive"),
            ("clip_norm", self.clip_norm >= 0, "must be 0 (off) or more"),
            ("save_every", self.save_every >= 0, "must be 0 (only at epoch ends) or more"),
            ("lr_decay", self.lr_decay >= 1, "must be 1 (off) or more"),
            ("dropout", 0 <= self.dropout < 1, "must be in [0, 1)"),
            ("valid_fraction", 0 < self.valid_fraction <= 0.5, "must be in (0, 0.5]"),
            ("test_fraction", 0 <= self.test_fraction < 0.5, "must be in [0, 0.5)"),
        ]
        check_ranges(self, ranges + dialogue.ranges(self))
        check_seed(self.seed)
        split_cycle(*self.held_out_shares())
        for name in ("valid_corpus", "test_corpus"):
            if getattr(self, name):
                try:  # a missing held-out file is answered before anything runs
                    find_files(getattr(self, name))
                except UsageError as e:
                    raise UsageError(f"{flag(name)}: {e}") from None
        conflict = next(self.conflicts(), None)
        if conflict:
            raise UsageError(conflict)
        if self.softmax == "adaptive":
            self.check_cutoffs()
        if self.init_embedding:
            self.check_init_embedding()
        if self.strategy == "multi-worker" and "TF_CONFIG" not in os.environ:
            raise UsageError("--strategy multi-worker needs the TF_CONFIG environment variable "
                             "(the cluster's workers and this one's index)")

    def check_cutoffs(self):
        """Cutoffs that cut the vocabulary into a head and tails: increasing, inside it.

        Ids are in frequency order (``corpus.Vocabulary``: ``<pad>``, ``<unk>``,
        then every word by descending count), so the head holds the most
        frequent words.
        """
        cutoffs = self.cutoffs
        shown = ",".join(map(str, cutoffs)) if isinstance(cutoffs, tuple) else repr(cutoffs)
        if not (isinstance(cutoffs, tuple) and cutoffs
                and all(isinstance(c, int) and not isinstance(c, bool) for c in cutoffs)
                and 0 < cutoffs[0] and all(a < b for a, b in zip(cutoffs, cutoffs[1:]))):
            raise UsageError(f"--cutoffs must be positive integers in increasing order, got {shown}")
        size = vocabulary_size(self.vocab)
        if size is not None and cutoffs[-1] >= size:
            raise UsageError(f"--cutoffs must be below the vocabulary's size ({size} entries in {self.vocab}), "
                             f"got {shown}")

    def check_init_embedding(self):
        """The vectors file's dimension is the embedding's: read from its header, before TensorFlow loads."""
        from .word2vec.vectors import read_header

        try:
            _, dim = read_header(self.init_embedding)
        except UsageError as e:
            raise UsageError(f"--init-embedding: {e}") from None
        if dim != self.embedding:
            raise UsageError(f"--init-embedding {self.init_embedding} holds {dim}-dimensional vectors: "
                             f"--embedding must match, got {self.embedding}")

    def held_out_shares(self):
        """The shares of the corpus held out for validation and test: none for a part read from its own files."""
        return (0 if self.valid_corpus else self.valid_fraction, 0 if self.test_corpus else self.test_fraction)

    def changed(self):
        """The settings off their defaults (for this objective): what a caller chose."""
        default = TrainConfig(objective=self.objective)
        return {f.name for f in dataclasses.fields(self) if getattr(self, f.name) != getattr(default, f.name)}

    def conflicts(self):
        """Why the flags cannot all act: chiefly a setting off its default that this run would ignore."""
        changed = self.changed()
        stream, arch = self.objective == "stream", self.arch
        yield from dialogue.conflicts(self, changed)
        if stream and arch in ("attention", "seq2seq"):
            yield f"--arch {arch} reads windows: use --objective window"
        for name in ("tied", "bptt"):
            if name in changed and not stream:
                yield f"{flag(name)} acts with --objective stream only"
        if "window" in changed and stream:
            yield "--window acts with --objective window only (a stream model reads the whole text)"
        for part in ("valid", "test"):
            if getattr(self, f"{part}_corpus") and f"{part}_fraction" in changed:
                yield f"--{part}-fraction and --{part}-corpus both choose the {part} text: give one"
        if self.embedding == ONEHOT and (stream or arch not in ("rnn", "lstm", "gru")):
            yield (ONEHOT_ONLY + (f" (--preset {self.preset} sets it: give --embedding N)" if self.preset else ""))
        if self.softmax == "adaptive" and not (stream or (self.objective == "window" and arch in CHOICES["cell"])):
            yield "--softmax adaptive acts with --objective stream, or window with --arch rnn, lstm or gru"
        if "cutoffs" in changed and self.softmax != "adaptive":
            yield "--cutoffs acts with --softmax adaptive only"
        if self.softmax == "adaptive" and self.tied:
            yield "--softmax adaptive and --tied do not go together: the tail clusters have no embedding to share"
        if self.tied and self.embedding != self.hidden:
            yield "--tied needs --embedding equal to --hidden"
        if self.init_embedding and self.embedding == ONEHOT:
            yield f"--init-embedding needs an embedding layer: --embedding {ONEHOT} has none (give --embedding N)"
        if self.freeze_embedding and not self.init_embedding:
            yield "--freeze-embedding acts with --init-embedding only (a random embedding would stay random)"
        if self.freeze_embedding and self.tied:
            yield "--freeze-embedding and --tied do not go together: the tied softmax would be frozen too"
        for name, also in (("cell", ("hred", "vhred")), ("score", ())):
            if name in changed and arch not in ("attention", "seq2seq", *also):
                yield f"{flag(name)} acts with --arch attention or seq2seq only" + (" (or hred, vhred)" if also else "")
        if "target_len" in changed and arch != "seq2seq":
            yield "--target-len acts with --arch seq2seq only"
        if "layers" in changed and arch in ("attention", "seq2seq"):
            yield f"--layers acts with --arch rnn, lstm or gru only (--arch {arch} has one layer)"
        if "dropout" in changed and arch == "seq2seq":
            yield "--dropout is not used by --arch seq2seq"
        if self.peephole and not (arch == "lstm" or (arch == "attention" and self.cell == "lstm")):
            yield "--peephole needs --arch lstm (or --arch attention --cell lstm)"


SAMPLING = ("temperature", "top_k", "top_p", "seed")  # generate's flags that act only when sampling


@dataclasses.dataclass
class GenerateConfig:
    """``generate``'s settings; None is a flag not given, which takes its default and conflicts with nothing."""

    words: int = 10
    temperature: float = None  # 1
    top_k: int = None  # 0: all
    top_p: float = None  # 1: no cut
    beam: int = None  # none: sample
    greedy: bool = False
    seed: int = None  # a fresh draw

    def validate(self):
        """Refuse a value out of range, or a flag that would not act.

        Beam search, ``--greedy`` and ``--temperature 0`` choose without
        sampling, so the sampling flags would do nothing beside them.
        """
        check_ranges(self, [
            ("words", self.words > 0, "must be a positive integer"),
            ("temperature", self.temperature is None or self.temperature >= 0, "must be 0 (greedy) or more"),
            ("top_k", self.top_k is None or self.top_k >= 0, "must be 0 (all) or more"),
            ("top_p", self.top_p is None or 0 < self.top_p <= 1, "must be in (0, 1]"),
            ("beam", self.beam is None or self.beam >= 1, "must be a positive integer"),
        ])
        if self.seed is not None:
            check_seed(self.seed)
        if self.beam and self.greedy:
            raise UsageError("--beam and --greedy do not go together: give one")
        chooser = ("--beam" if self.beam else "--greedy" if self.greedy
                   else "--temperature 0" if self.temperature == 0 else None)
        ignored = [name for name in SAMPLING if getattr(self, name) is not None
                   and not (chooser == "--temperature 0" and name == "temperature")]
        if chooser and ignored:
            raise UsageError(f"{chooser} does not sample: {flag(ignored[0])} would be ignored")
        return self

    def decoding(self):
        """The arguments of :mod:`lm_app.decoding`: the defaults in place of the flags not given."""
        return {"temperature": 1.0 if self.temperature is None else self.temperature, "top_k": self.top_k or 0,
                "top_p": 1.0 if self.top_p is None else self.top_p, "beam": self.beam or 0,
                "greedy": self.greedy, "seed": self.seed}


@dataclasses.dataclass
class PredictConfig:
    """``predict``'s settings."""

    top_k: int = None  # 5, or the model's exported top-k if that is fewer
    show_attention: bool = False
    attention_png: str = None  # attention.png

    def validate(self):
        check_ranges(self, [("top_k", self.top_k is None or self.top_k > 0, "must be a positive integer")])
        if self.attention_png and not self.show_attention:
            raise UsageError("--attention-png acts with --show-attention only")
        return self

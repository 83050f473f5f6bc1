"""The ``word2vec`` command's settings and their one check, free of TensorFlow: a bad flag is answered at once."""
import dataclasses
from pathlib import Path

from ..config import check_ranges, check_seed, flag
from ..corpus import find_files
from ..errors import UsageError

MODES = ("cbow", "skipgram")


@dataclasses.dataclass
class Word2VecConfig:
    """Mirrors the ``word2vec`` flags; the defaults are gensim's ``Word2Vec``'s (and word2vec.c's)."""

    corpus: str = "corpus/**/*.txt"
    vocab: str = "saved_models/vocab.txt"
    out: str = "saved_models/w2v"
    mode: str = "cbow"
    dim: int = 100
    window: int = 5
    negative: int = 5
    sample: float = 1e-3
    epochs: int = 5
    learning_rate: float = 0.025
    min_learning_rate: float = 0.0001
    seed: int = 1
    threads: int = 2
    batch_words: int = 200_000  # words per call of the training op: large, so Python's share stays small
    save_every: int = 20  # batches between checkpoints (and at every epoch's end)

    @classmethod
    def from_dict(cls, stored):
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in stored.items() if k in known})

    def validate(self):
        """Refuse, in one line naming the flag, the first setting out of range."""
        if self.mode not in MODES:
            raise UsageError(f"--mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        for name in ("dim", "window", "epochs", "threads", "batch_words", "save_every"):
            if getattr(self, name) <= 0:
                raise UsageError(f"{flag(name)} must be a positive integer, got {getattr(self, name)}")
        check_ranges(self, [
            ("negative", self.negative >= 1, "must be 1 or more (word2vec here trains by negative sampling)"),
            ("sample", 0 <= self.sample < 1, "must be in [0, 1) (0: no subsampling)"),
            ("learning_rate", self.learning_rate > 0, "must be positive"),
            ("min_learning_rate", 0 <= self.min_learning_rate <= self.learning_rate,
             "must be in [0, --learning-rate]"),
            ("threads", self.threads <= 256, "must be at most 256"),
        ])
        check_seed(self.seed)
        if not str(self.out).strip():
            raise UsageError("--out must name a folder")
        find_files(self.corpus)  # a missing corpus or vocabulary is answered before anything loads
        if not Path(self.vocab).is_file():
            raise UsageError(f"vocabulary not found: {self.vocab} (run build-dict first)")

"""Run settings, kept apart from the training code so the CLI can show defaults without importing TensorFlow."""
import dataclasses


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
    embedding: int = 64
    hidden: int = 128
    layers: int = 1
    peephole: bool = False
    dropout: float = 0.0
    tied: bool = False
    optimizer: str = "adam"
    epochs: int = 30
    batch_size: int = 128
    learning_rate: float = 0.005
    clip_norm: float = 0.0
    lr_decay: float = 4.0
    patience: int = 3
    valid_fraction: float = 0.1
    test_fraction: float = 0.1
    top_k: int = 10
    save_every: int = 0
    strategy: str = "default"
    seed: int = 1234

    @classmethod
    def from_dict(cls, stored):
        """Settings saved by a run (config.json, run.json), ignoring keys that are not settings."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in stored.items() if k in known})

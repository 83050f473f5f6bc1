"""Training objectives: one file per way of turning the corpus into training steps.

train.py's loop knows an objective only through :class:`Objective`.  A new
model family is one new file here, a subclass of it, registered below by the
name ``--objective`` gives it (config.CHOICES lists the names the CLI accepts).
"""
from .base import SPLIT_NAMES, Objective
from .dialogue import DialogueObjective
from .stream import StreamObjective
from .window import WindowObjective

__all__ = ["OBJECTIVES", "DialogueObjective", "SPLIT_NAMES", "Objective", "StreamObjective", "WindowObjective", "make_objective"]

OBJECTIVES = {"window": WindowObjective, "stream": StreamObjective, "dialogue": DialogueObjective}


def make_objective(cfg, vocab, files):
    """The objective ``cfg.objective`` names, its data read from ``files``."""
    return OBJECTIVES[cfg.objective](cfg, vocab, files)

"""What the dialogue tests share: writing a dialogue corpus and its vocabulary."""
from pathlib import Path

from lm_app import corpus


def write_dialogues(path, dialogues):
    """One turn per line, a blank line between dialogues: the corpus format."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n\n".join("\n".join(turns) for turns in dialogues) + "\n", encoding="utf-8")
    return path


def vocabulary(glob):
    return corpus.build_vocabulary(str(glob), min_count=0)


WORDS = "alpha bravo charlie delta echo foxtrot golf hotel india juliet".split()


def synthetic_dialogues(n=60, turns=4):
    """Each turn repeats the previous one's words shifted by one place in WORDS: a learnable pattern."""
    return [[" ".join(WORDS[(d + t + i) % len(WORDS)] for i in range(3)) for t in range(turns)] for d in range(n)]

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

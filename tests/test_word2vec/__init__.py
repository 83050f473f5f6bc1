"""Tests of word2vec training: formulas, loss, native kernel, the loop and the command."""
import random
from pathlib import Path

from tests.conftest import run_cli

GROUPS = {"a": [f"apple{c}" for c in "abcdef"], "b": [f"bolt{c}" for c in "abcdef"]}


def planted_corpus(work, words_per_file=3000, files=2, seed=0):
    """Two groups of words, each only ever seen among its own group (one group per file): ``(glob, vocab)``.

    Files end sentences, so no window mixes the groups; trained vectors should
    put every word nearest to words of its own group.
    """
    rng = random.Random(seed)
    folder = Path(work) / "planted"
    folder.mkdir(parents=True, exist_ok=True)
    for name, words in GROUPS.items():
        for i in range(files):
            text = " ".join(rng.choice(words) for _ in range(words_per_file))
            (folder / f"{name}{i}.txt").write_text(text + "\n", encoding="utf-8")
    vocab = Path(work) / "vocab.txt"
    built = run_cli("build-dict", "--corpus", folder / "*.txt", "--vocab", vocab, "--min-count", 0)
    assert built.returncode == 0, built.stderr
    return str(folder / "*.txt"), vocab


def group_of(word):
    return next(name for name, words in GROUPS.items() if word in words)


def nearest_in_group(words, vectors):
    """The share of words whose nearest other word (cosine) is of their own group."""
    import numpy as np

    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    similarity = unit @ unit.T
    np.fill_diagonal(similarity, -2)
    nearest = similarity.argmax(1)
    return np.mean([group_of(w) == group_of(words[j]) for w, j in zip(words, nearest)])

"""Word vectors with planted structure, written as training would write them (no training needed)."""
import itertools

import numpy as np
import pytest

# Every combination of three binary features: a word is e0 + its gender + its status + its age
# (orthonormal directions), so  king - man + woman = queen  exactly, over unit vectors too.
PLANTED = {("male", "common", "adult"): "man", ("female", "common", "adult"): "woman",
           ("male", "royal", "adult"): "king", ("female", "royal", "adult"): "queen",
           ("male", "common", "young"): "boy", ("female", "common", "young"): "girl",
           ("male", "royal", "young"): "prince", ("female", "royal", "young"): "princess"}
FEATURES = {"male": 1, "female": 2, "common": 3, "royal": 4, "adult": 5, "young": 6}
FILLER = ["apple", "pear", "river", "stone", "cloud", "table", "green", "quick", "seven", "lamp",
          "horse", "bread", "north", "glass", "music", "paper", "winter", "silver", "garden", "letter"]
DIM = 10


def planted_vectors(seed=0):
    """``(words, float32 vectors)``: the planted words (slightly noised, so no two cosines tie) and random filler."""
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.normal(size=(DIM, DIM)))[0]
    words, rows = [], []
    for features, word in PLANTED.items():
        words.append(word)
        rows.append(basis[0] + sum(basis[FEATURES[f]] for f in features) + rng.normal(0, 0.01, DIM))
    words += FILLER
    rows += list(rng.normal(0, 1, (len(FILLER), DIM)))
    return words, np.array(rows, dtype=np.float32)


def analogy_pairs():
    """Every planted analogy a:b = c:d that changes one feature (man:king = woman:queen, ...)."""
    for f1, f2 in itertools.permutations(PLANTED, 2):
        changed = [i for i in range(3) if f1[i] != f2[i]]
        if len(changed) != 1:
            continue
        for f3 in PLANTED:
            if f3 in (f1, f2) or f3[changed[0]] != f1[changed[0]]:
                continue
            f4 = tuple(f2[i] if i in changed else f3[i] for i in range(3))
            yield PLANTED[f1], PLANTED[f2], PLANTED[f3], PLANTED[f4]


@pytest.fixture(scope="session")
def w2v_folder(tmp_path_factory):
    """A word2vec output folder of the planted vectors, written by ``write_outputs``."""
    from lm_app.word2vec.outputs import write_outputs

    folder = tmp_path_factory.mktemp("w2v") / "w2v"
    folder.mkdir()
    words, vectors = planted_vectors()
    write_outputs(folder, words, vectors, {"mode": "skipgram", "dim": DIM, "corpus": "planted"})
    return folder

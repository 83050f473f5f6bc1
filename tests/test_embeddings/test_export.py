"""The word2vec SavedModel, called from a process that has only TensorFlow, against NumPy."""
import json
import os
import sys

import numpy as np

from tests import forks
from tests.test_embeddings.conftest import planted_vectors

# Runs in a process that never imports lm_app: the SavedModel must carry everything.
PLAIN_TF = r"""
import json, sys
import tensorflow as tf
model = tf.saved_model.load(sys.argv[1])
calls = {
    "similar": model.signatures["similar"](words=tf.constant(["king", "APPLE", "nosuchword"]), k=tf.constant(4)),
    "analogy": model.signatures["analogy"](a=tf.constant(["man", "man"]), b=tf.constant(["king", "king"]),
                                           c=tf.constant(["Woman", "nosuchword"]), k=tf.constant(3)),
    "vector": model.signatures["vector"](words=tf.constant(["pear", "nosuchword"])),
    "big_k": model.signatures["similar"](words=tf.constant(["king"]), k=tf.constant(1000)),
}
out = {name: {k: v.numpy().tolist() for k, v in result.items()} for name, result in calls.items()}
out["lm_app_loaded"] = any(m == "lm_app" or m.startswith("lm_app.") for m in sys.modules)
print(json.dumps(out, default=lambda b: b.decode()))
"""


def numpy_nearest(target, unit, exclude, k):
    scores = unit @ (target / np.linalg.norm(target))
    scores[list(exclude)] = -np.inf
    order = np.argsort(-scores)[:k]
    return order, scores[order]


def test_the_signatures_answer_in_plain_tensorflow_as_numpy_does(w2v_folder, tmp_path):
    """#15: similar, analogy and vector run without lm_app and agree with NumPy's cosine arithmetic."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = forks.run([sys.executable, "-c", PLAIN_TF, str(w2v_folder)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["lm_app_loaded"] is False

    words, vectors = planted_vectors()
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    similar = out["similar"]
    assert similar["known"] == [True, True, False]
    assert similar["query"] == ["king", "apple", "nosuchword"]  # case-folded as the corpus was
    for row, word in enumerate(["king", "apple"]):
        i = words.index(word)
        order, scores = numpy_nearest(unit[i], unit, [i], 4)
        assert similar["words"][row] == [words[j] for j in order]
        np.testing.assert_allclose(similar["scores"][row], scores, rtol=1e-5)
    assert similar["words"][2] == [""] * 4 and similar["scores"][2] == [0.0] * 4

    analogy = out["analogy"]
    assert analogy["known"] == [True, False]
    assert analogy["words"][0][0] == "queen" and analogy["words"][1] == [""] * 3
    a, b, c = (words.index(w) for w in ("man", "king", "woman"))
    order, scores = numpy_nearest(unit[b] - unit[a] + unit[c], unit, [a, b, c], 3)
    assert analogy["words"][0] == [words[j] for j in order]
    np.testing.assert_allclose(analogy["scores"][0], scores, rtol=1e-5)

    assert out["vector"]["known"] == [True, False]
    np.testing.assert_array_equal(out["vector"]["vectors"][0], vectors[words.index("pear")])
    assert out["vector"]["vectors"][1] == [0.0] * vectors.shape[1]
    assert len(out["big_k"]["words"][0]) == len(words) - 1  # k is clipped: every other word once
    assert "king" not in out["big_k"]["words"][0]

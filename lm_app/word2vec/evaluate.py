"""Word vectors scored on the standard sets, computed as gensim's ``evaluate_word_pairs`` and ``evaluate_word_analogies``.

Figures are only comparable when computed the same way, so this follows
gensim 4.4 to the letter: words are case-folded by upper-casing both sides
(on a clash the more frequent word's vector wins); a pair or question with a
word outside the vocabulary is skipped and counted in the coverage; every
vocabulary word is a candidate answer (gensim's ``restrict_vocab`` of 300,000
exceeds our vocabularies); an analogy a:b = c:? is answered by 3CosAdd, the
word nearest ``b - a + c`` over unit vectors other than a, b and c.  Spearman's
rho is the Pearson correlation of average ranks (scipy's, without scipy: it
is not a dependency of the product).  A test checks the figures against
gensim's own on the same vectors.

NumPy only; the analogies are solved a batch of questions at a time, one
matrix product per batch, so the 19,544 Google questions take seconds.
"""
from pathlib import Path

import numpy as np

from ..errors import UsageError
from .vectors import unit_vectors

EVAL_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "word_eval"
DEFAULT_PAIRS = ("wordsim353.tsv", "simlex999.txt")
DEFAULT_ANALOGIES = ("questions-words.txt",)
BATCH = 256  # questions per matrix product


def default_sets():
    """``(pair files, analogy files)``: the standard sets beside the repository, when it has them."""
    pairs, analogies = ([EVAL_DIR / name for name in names] for names in (DEFAULT_PAIRS, DEFAULT_ANALOGIES))
    if not all(path.is_file() for path in pairs + analogies):
        raise UsageError(f"the standard evaluation sets are not in {EVAL_DIR}: give --pairs FILE "
                         "(word1<TAB>word2<TAB>score lines) and/or --analogies FILE (': section' "
                         "lines, then 'a b c d' lines)")
    return pairs, analogies


class Vectors:
    """Vectors as gensim's evaluations see them: unit length, looked up by upper-cased word."""

    def __init__(self, words, vectors):
        self.unit = unit_vectors(vectors)
        self.index = {w.upper(): i for i, w in reversed(list(enumerate(words)))}
        # The word each row answers for once folded: itself, unless a more frequent case variant exists.
        self.folded = np.array([self.index[w.upper()] for w in words])
        self.variants = bool((self.folded != np.arange(len(words))).any())


def read_lines(path):
    try:
        with open(path, "rb") as f:
            return [line.decode("utf-8") for line in f]
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path} is not UTF-8 text") from None


def ranks(x):
    """Ranks 1..n, ties sharing their average rank (scipy's ``rankdata``)."""
    x = np.asarray(x, dtype=np.float64)
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    starts = np.flatnonzero(np.r_[True, sorted_x[1:] != sorted_x[:-1]])
    ends = np.r_[starts[1:], len(x)]
    average = (starts + ends + 1) / 2  # mean of the 1-based ranks start+1 .. end
    result = np.empty(len(x))
    result[order] = np.repeat(average, ends - starts)
    return result


def pearson(x, y):
    """Pearson's r; None where it is undefined (fewer than 2 values, or a constant side)."""
    x, y = (np.asarray(v, dtype=np.float64) for v in (x, y))
    if len(x) < 2:
        return None
    x, y = x - x.mean(), y - y.mean()
    denominator = np.sqrt((x * x).sum() * (y * y).sum())
    return float((x * y).sum() / denominator) if denominator > 0 else None


def spearman(x, y):
    return pearson(ranks(x), ranks(y)) if len(x) >= 2 else None


def word_pairs(path, vectors):
    """Spearman's rho and Pearson's r between cosine similarity and the human scores of ``path``'s pairs."""
    gold, pairs, oov = [], [], 0
    for line in read_lines(path):
        if not line or line.startswith("#"):
            continue
        fields = [field.upper() for field in line.split("\t")]
        try:
            a, b, score = fields
            score = float(score)
        except ValueError:  # gensim skips a line that is not word, word, number
            continue
        if a not in vectors.index or b not in vectors.index:
            oov += 1
            continue
        gold.append(score)
        pairs.append((vectors.index[a], vectors.index[b]))
    total = len(gold) + oov
    if not total:
        raise UsageError(f"{path} holds no word pairs (word1<TAB>word2<TAB>score lines)")
    pairs = np.array(pairs, dtype=np.int64).reshape(-1, 2)
    model = np.einsum("ij,ij->i", vectors.unit[pairs[:, 0]], vectors.unit[pairs[:, 1]])
    return {"file": str(path), "spearman": spearman(gold, model), "pearson": pearson(gold, model),
            "pairs": total, "used": len(gold), "coverage": len(gold) / total, "oov": oov / total}


def read_questions(path, vectors):
    """``(sections [(name, [ids of a, b, c, expected])], questions, out-of-vocabulary questions)``."""
    sections, questions, oov = [], 0, 0
    for number, line in enumerate(read_lines(path), start=1):
        if line.startswith(": "):
            sections.append((line.lstrip(": ").strip(), []))
            continue
        words = [word.upper() for word in line.split()]
        if len(words) != 4:
            continue
        if not sections:
            raise UsageError(f"{path} line {number}: a question before the first ': section' line")
        questions += 1
        if all(word in vectors.index for word in words):
            sections[-1][1].append([vectors.index[word] for word in words])
        else:
            oov += 1
    if not questions:
        raise UsageError(f"{path} holds no analogy questions (': section' lines, then 'a b c d' lines)")
    return sections, questions, oov


def answers(vectors, questions):
    """The 3CosAdd answer to each question ``(a, b, c, expected)``, as a row of ``vectors``."""
    questions = np.asarray(questions, dtype=np.int64).reshape(-1, 4)
    found = np.empty(len(questions), dtype=np.int64)
    unit = vectors.unit
    for start in range(0, len(questions), BATCH):
        a, b, c = questions[start:start + BATCH, :3].T
        # b - a + c; gensim scales it to unit length, which changes no ranking.
        scores = (unit[b] - unit[a] + unit[c]) @ unit.T
        rows = np.arange(len(a))[:, None]
        scores[rows, np.stack([a, b, c], axis=1)] = -np.inf
        if vectors.variants:  # a case variant of a query word is no answer either
            for query in (a, b, c):
                scores[vectors.folded[None, :] == query[:, None]] = -np.inf
        found[start:start + len(a)] = vectors.folded[scores.argmax(axis=1)]
    return found


def word_analogies(path, vectors):
    """Accuracy on ``path``'s analogy questions, overall and per section."""
    sections, questions, oov = read_questions(path, vectors)
    report = {"file": str(path), "questions": questions, "sections": {}}
    correct = used = 0
    for name, rows in sections:
        right = int((answers(vectors, rows) == np.array(rows, dtype=np.int64).reshape(-1, 4)[:, 3]).sum())
        report["sections"][name] = {"correct": right, "questions": len(rows),
                                    "accuracy": right / len(rows) if rows else None}
        correct, used = correct + right, used + len(rows)
    report.update(correct=correct, used=used, accuracy=correct / used if used else None,
                  coverage=used / questions, oov=oov / questions)
    return report


def evaluate(words, vectors, pair_files, analogy_files):
    """Every figure of every file, as one JSON-ready dict."""
    vectors = Vectors(words, vectors)
    return {"pairs": [word_pairs(path, vectors) for path in pair_files],
            "analogies": [word_analogies(path, vectors) for path in analogy_files]}


def figure(value, fmt):
    return "n/a" if value is None else format(value, fmt)


def format_report(report):
    lines = []
    for r in report["pairs"]:
        lines.append(f"{Path(r['file']).name}: Spearman {figure(r['spearman'], '.3f')}, "
                     f"Pearson {figure(r['pearson'], '.3f')} ({r['used']} of {r['pairs']} pairs "
                     f"in the vocabulary, {r['coverage']:.1%})")
    for r in report["analogies"]:
        lines.append(f"{Path(r['file']).name}: accuracy {figure(r['accuracy'], '.1%')} "
                     f"({r['correct']} of {r['used']} questions right; {r['used']} of "
                     f"{r['questions']} in the vocabulary, {r['coverage']:.1%})")
    return "\n".join(lines)

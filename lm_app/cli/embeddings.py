"""The word vectors' commands: similar, analogy and evaluate-embeddings.

``similar`` and ``analogy`` ask the word2vec folder's SavedModel, as any
TensorFlow program could; the folder and the query words are checked first,
from its plain files, so a typo is answered before TensorFlow loads.
``evaluate-embeddings`` needs only NumPy and ``vectors.txt``.
"""
import argparse
import json

from ..errors import UsageError
from ..process import import_tensorflow

MODEL_DIR = "saved_models/w2v"


def positive_int(value):
    n = int(value)
    if n <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return n


def check_words(model_dir, words):
    """The folder is a word2vec model and knows every query word, else a one-line UsageError naming the first it lacks."""
    from ..word2vec.outputs import read_meta, read_words
    from ..word2vec.vectors import EXACT, normalise_query

    rule = read_meta(model_dir).get("query_rule", EXACT)
    vocabulary = set(read_words(model_dir))
    for word in words:
        if normalise_query(word, rule) not in vocabulary:
            raise UsageError(f"{word!r} is not in the vocabulary of {model_dir}")


def call(model_dir, signature, **inputs):
    """One call of the SavedModel's ``signature``, its outputs as NumPy arrays."""
    tf = import_tensorflow()
    model = tf.saved_model.load(str(model_dir))
    outputs = model.signatures[signature](**{k: tf.constant(v) for k, v in inputs.items()})
    return {k: v.numpy() for k, v in outputs.items()}


def ranked(words, scores):
    return [{"word": w.decode(), "cosine": round(float(s), 6)} for w, s in zip(words, scores)]


def table(ranking):
    return "\n".join(f"  {r['word']:<20} {r['cosine']:.4f}" for r in ranking)


def cmd_similar(args):
    check_words(args.model_dir, args.words)
    out = call(args.model_dir, "similar", words=args.words, k=args.top_k)
    results = [{"word": word, "similar": ranked(*row)}
               for word, *row in zip(args.words, out["words"], out["scores"])]
    if args.json:
        print(json.dumps({"results": results}))
    else:
        print("\n".join(f"{r['word']}\n{table(r['similar'])}" for r in results))


def cmd_analogy(args):
    query = [args.a, args.b, args.c]
    check_words(args.model_dir, query)
    out = call(args.model_dir, "analogy", a=[args.a], b=[args.b], c=[args.c], k=args.top_k)
    answers = ranked(out["words"][0], out["scores"][0])
    if args.json:
        print(json.dumps({"a": args.a, "b": args.b, "c": args.c, "answers": answers}))
    else:
        print(f"{args.a} : {args.b} = {args.c} : {answers[0]['word'] if answers else '?'}\n{table(answers)}")


def cmd_evaluate_embeddings(args):
    from ..word2vec import evaluate
    from ..word2vec.outputs import VECTORS, read_meta
    from ..word2vec.vectors import read_vectors

    read_meta(args.model_dir, needs=VECTORS)
    if args.pairs is None and args.analogies is None:
        pairs, analogies = evaluate.default_sets()
    else:
        pairs, analogies = args.pairs or [], args.analogies or []
    for path in pairs + analogies:
        evaluate.read_lines(path)  # a missing file is answered before the vectors are read
    words, vectors = read_vectors(f"{args.model_dir}/{VECTORS}")
    report = evaluate.evaluate(words, vectors, pairs, analogies)
    print(json.dumps(report) if args.json else evaluate.format_report(report))


def add_commands(sub):
    """Declare the word vectors' sub-commands on ``sub`` (the top parser's sub-parsers)."""
    def common(p, top_k=True):
        p.add_argument("--model-dir", default=MODEL_DIR, help="word2vec output folder (default: %(default)s)")
        if top_k:
            p.add_argument("--top-k", type=positive_int, default=10,
                           help="words to list (default: %(default)s)")
        p.add_argument("--json", action="store_true", help="print one JSON object")

    p = sub.add_parser("similar", help="the words nearest a word by cosine similarity",
                       description="List the words whose word2vec vectors are nearest each WORD's "
                       "(cosine similarity), the word itself left out, from the SavedModel of a "
                       "`word2vec` folder. Words are normalised as the vocabulary was (King -> king).")
    p.add_argument("words", nargs="+", metavar="WORD", help="one or more words")
    common(p)
    p.set_defaults(func=cmd_similar)

    p = sub.add_parser("analogy", help="a : b = c : ? by vector arithmetic (3CosAdd)",
                       description="Answer A : B = C : ? (man king woman -> queen) with the words "
                       "nearest B - A + C over unit vectors (3CosAdd), the three query words left "
                       "out, from the SavedModel of a `word2vec` folder.")
    for name in "abc":
        p.add_argument(name, metavar=name.upper(), help=f"word {name.upper()} of A : B = C : ?")
    common(p)
    p.set_defaults(func=cmd_analogy)

    p = sub.add_parser("evaluate-embeddings", help="score word vectors on word similarity and analogies",
                       description="Spearman's rho (and Pearson's r) between the vectors' cosine "
                       "similarity and human scores of word pairs, and the accuracy of 3CosAdd on "
                       "analogy questions, computed as gensim's evaluate_word_pairs and "
                       "evaluate_word_analogies do (case-folded; pairs and questions with a word "
                       "outside the vocabulary are skipped and reported as coverage). Without "
                       "--pairs or --analogies: WordSim-353, SimLex-999 and the Google analogies "
                       "from ../shared/data/word_eval/ beside the repository; with either, only the "
                       "files given.")
    common(p, top_k=False)
    p.add_argument("--pairs", nargs="+", action="extend", metavar="FILE", default=None,
                   help="word-pair files: '#' comments, then word1<TAB>word2<TAB>score lines "
                   "(default: wordsim353.tsv and simlex999.txt)")
    p.add_argument("--analogies", nargs="+", action="extend", metavar="FILE", default=None,
                   help="analogy files: ': section' lines, then 'a b c d' lines for a:b = c:d "
                   "(default: questions-words.txt)")
    p.set_defaults(func=cmd_evaluate_embeddings)

"""lm_app's word2vec against gensim 4.4.0's ``Word2Vec``, side by side in one run, on the same word stream.

Corpus: ``../shared/data/gutenberg``, normalised by lm_app's rule; vocabulary
by ``build-dict --min-count 4`` (build-dict turns words seen 4 times or fewer
into ``<unk>``, so it keeps what gensim's ``min_count=5`` keeps).  gensim is
fed the very stream lm_app trains on: the in-vocabulary words, cut at file
ends and every 10,000 words, as lists of words held in memory (so reading
costs it nothing).  Same settings on both sides: dim 100, window 5, negative
5, sample 1e-3, alpha 0.025 to 0.0001, 5 epochs, 2 threads.  The sides
alternate run by run, each seed once a side, so both meet the same spells of
this shared machine.

Speed is raw words/s: corpus words x epochs / training seconds (gensim's
``train`` call; lm_app's batches, not its one-off id-file pass, printed
apart).  Quality is gensim's own ``evaluate_word_pairs`` (WordSim-353,
SimLex-999: Spearman rho) and ``evaluate_word_analogies`` (Google analogies,
3CosAdd) on both sides' vectors, lm_app's read from its ``vectors.txt`` with
``KeyedVectors.load_word2vec_format``.  Medians over ``--seeds`` seeds.

    .venv/bin/python bench/word2vec.py [--seeds 3] [--modes cbow skipgram] [--quick]
    .venv/bin/python bench/word2vec.py --memory

``--memory`` checks that memory stays flat in corpus size: the ``word2vec``
command (one epoch, in its own process) on gutenberg and on gutenberg four
times over, with the same vocabulary, its peak resident memory each time.

``--quick`` (one file, one epoch, one seed) checks the script; it records its
figures only where ``--results`` says.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
from bench import record  # noqa: E402

SETTINGS = dict(dim=100, window=5, negative=5, sample=1e-3, learning_rate=0.025, min_learning_rate=0.0001,
                threads=2)
QUALITY = ("wordsim", "simlex", "analogy")


def prepare(work, corpus):
    """build-dict's vocabulary, lm_app's id file (timed), and gensim's sentences from the same ids."""
    from lm_app import corpus as lm_corpus
    from lm_app.atomic import read_json
    from lm_app.word2vec import sampling
    from lm_app.word2vec.train import ID_RECORD, id_stream, state_dir

    vocab = lm_corpus.build_vocabulary(corpus, min_count=4)
    vocab.save(work / "vocab.txt")
    out = work / "lm_app"
    state_dir(out).mkdir(parents=True)
    files = lm_corpus.find_files(corpus)
    ids, ends = id_stream(files, vocab, state_dir(out), log=print)
    bounds = sampling.sentences(ends)
    sentences = [[vocab.tokens[i] for i in ids[a:b]] for a, b in zip(bounds[:-1], bounds[1:])]
    prepass = read_json(state_dir(out) / ID_RECORD)["seconds"]
    return vocab, out, sentences, int(bounds[-1]), prepass


def run_lm_app(corpus, work, out, mode, epochs, seed):
    from gensim.models import KeyedVectors

    from lm_app.word2vec.config import Word2VecConfig
    from lm_app.word2vec.train import train

    cfg = Word2VecConfig(corpus=corpus, vocab=str(work / "vocab.txt"), out=str(out), mode=mode, epochs=epochs,
                         seed=seed, **SETTINGS)
    result = train(cfg, verbose=0, log=lambda *a: None)
    kv = KeyedVectors.load_word2vec_format(str(out / "vectors.txt"))
    return result["trained_words"] / result["seconds"], kv


def run_gensim(sentences, mode, epochs, seed):
    from gensim.models import Word2Vec

    model = Word2Vec(vector_size=SETTINGS["dim"], window=SETTINGS["window"], negative=SETTINGS["negative"],
                     hs=0, sample=SETTINGS["sample"], alpha=SETTINGS["learning_rate"],
                     min_alpha=SETTINGS["min_learning_rate"], min_count=5, sg=int(mode == "skipgram"),
                     workers=SETTINGS["threads"], seed=seed)
    model.build_vocab(sentences)
    started = time.perf_counter()
    _, raw = model.train(sentences, total_examples=model.corpus_count, epochs=epochs)
    return raw / (time.perf_counter() - started), model.wv


def quality(kv):
    eval_dir = DATA / "word_eval"
    return {"wordsim": kv.evaluate_word_pairs(str(eval_dir / "wordsim353.tsv"))[1][0],
            "simlex": kv.evaluate_word_pairs(str(eval_dir / "simlex999.txt"))[1][0],
            "analogy": kv.evaluate_word_analogies(str(eval_dir / "questions-words.txt"))[0]}


def peak_mib(command):
    """The peak resident memory of ``command`` run alone in a fresh child of a fresh process."""
    code = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", code, *command], check=True, capture_output=True, text=True,
                         cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    return int(out.stdout.split()[-1]) / 1024


def memory(args, argv):
    """``word2vec``'s peak memory on the corpus at 1x and 4x: the same when the corpus is streamed."""
    peaks, rows = {}, []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for copies in (1, 4):
            folder = work / f"x{copies}"
            folder.mkdir()
            for n in range(copies):
                for f in (DATA / "gutenberg").glob("*.txt"):
                    shutil.copy(f, folder / f"{n}-{f.name}")
            lm = [sys.executable, "-m", "lm_app"]
            corpus, vocab = str(folder / "*.txt"), str(work / "vocab.txt")
            if copies == 1:  # one vocabulary for both: only the corpus grows, not the tables
                subprocess.run([*lm, "build-dict", "--corpus", corpus, "--vocab", vocab, "--min-count", "4"],
                               check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
            peaks[copies] = peak_mib([*lm, "word2vec", "--corpus", corpus, "--vocab", vocab, "--out",
                                      str(work / f"w2v{copies}"), "--epochs", "1"])
            size = sum(f.stat().st_size for f in folder.glob("*.txt")) / 1e6
            print(f"gutenberg x{copies} ({size:.0f} MB): word2vec peak {peaks[copies]:.0f} MiB", flush=True)
            rows.append([f"x{copies}", size, peaks[copies]])
            shutil.rmtree(folder)
    ratio = peaks[4] / peaks[1]
    print(f"peak at 4x / peak at 1x (target <= 1.05): {ratio:.3f}")
    record.save("word2vec-memory", [record.table("word2vec, 1 epoch, in its own process",
                                                  ["corpus", "MB", "peak MiB"], rows)],
                {"word2vec peak memory, gutenberg 4x / 1x (target <= 1.05)": ratio}, argv, args.results,
                script="word2vec")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3, help="runs a side, seeds 1, 2, ... (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--modes", nargs="+", default=["cbow", "skipgram"], choices=["cbow", "skipgram"])
    parser.add_argument("--quick", action="store_true", help="one file, one epoch, one seed; not recorded "
                        "unless --results is given")
    parser.add_argument("--memory", action="store_true", help="peak memory at 1x and 4x the corpus instead")
    record.add_argument(parser)
    args = parser.parse_args(argv)
    if args.memory:
        return memory(args, argv)
    corpus = str(DATA / "gutenberg" / "*.txt")
    if args.quick:
        corpus = str(sorted((DATA / "gutenberg").glob("*.txt"))[0])
        args.seeds, args.epochs = 1, 1
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        vocab, out, sentences, words, prepass = prepare(work, corpus)
        print(f"{words:,} words an epoch, vocabulary {len(vocab) - 2:,}; lm_app's id file: {prepass:.1f} s (once)")
        runs = {(side, mode): [] for side in ("lm_app", "gensim") for mode in args.modes}
        for seed in range(1, args.seeds + 1):
            for mode in args.modes:
                sides = ("lm_app", "gensim") if (seed + args.modes.index(mode)) % 2 else ("gensim", "lm_app")
                for side in sides:  # alternating which side goes first
                    speed, kv = (run_lm_app(corpus, work, out, mode, args.epochs, seed) if side == "lm_app"
                                 else run_gensim(sentences, mode, args.epochs, seed))
                    figures = dict(quality(kv), speed=speed)
                    runs[side, mode].append(figures)
                    print(f"seed {seed} {mode:8} {side:6}: {speed:,.0f} words/s, " +
                          ", ".join(f"{k} {figures[k]:.3f}" for k in QUALITY), flush=True)
    rows, summary = [], {}
    for mode in args.modes:
        med = {side: {k: statistics.median(r[k] for r in runs[side, mode]) for k in ("speed", *QUALITY)}
               for side in ("lm_app", "gensim")}
        ratio = med["lm_app"]["speed"] / med["gensim"]["speed"]
        rows.append([mode, med["lm_app"]["speed"], med["gensim"]["speed"], ratio,
                     *[x for k in QUALITY for x in (med["lm_app"][k], med["gensim"][k])]])
        summary[f"{mode}: words/s ratio lm_app / gensim (target >= 1.0)"] = ratio
        for k in QUALITY:
            summary[f"{mode}: {k} lm_app - gensim (target >= -0.02)"] = med["lm_app"][k] - med["gensim"][k]
    for key, value in summary.items():
        print(f"{key}: {value:.3f}")
    summary["lm_app id-file pass, seconds (once per corpus, not in words/s)"] = prepass
    if args.quick and args.results == str(record.RESULTS):
        return
    columns = ["mode", "lm_app words/s", "gensim words/s", "lm_app/gensim",
               *[f"{k} {side}" for k in QUALITY for side in ("lm_app", "gensim")]]
    title = f"median of {args.seeds} seed(s), {args.epochs} epoch(s), {words:,} words an epoch, 2 threads each"
    record.save("word2vec", [record.table(title, columns, rows)], summary, argv, args.results)


if __name__ == "__main__":
    main()

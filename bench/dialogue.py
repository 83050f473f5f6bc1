"""HRED, VHRED and the flat seq2seq baseline side by side on the Shakespeare dialogues, median of seeds.

Every model trains on ``../shared/data/dialogue/shakespeare`` with the same
sizes, epochs, batches and optimiser (Adam at ``--learning-rate`` 0.001, the
gradient's norm clipped at ``--clip-norm`` 1, as the papers' code clips it;
at train's 0.005 HRED's utterance encoder saturates to a constant and no
model reads its context), each run in its own process (so its peak memory is
its own), one after the other (two trainings on two cores ruin both).  For
each, ``evaluate`` scores the test dialogues: per-token response perplexity
(VHRED: the ELBO's bound), the KL per response, and distinct-1/2 of 5 answers
sampled per test context at temperature 1, and distinct-2 again at
``--low-temperature`` (0.5: the papers compare diversity under mode-seeking
decoding, where HRED's answers can only vary by the sampled words, VHRED's
by z too); distinct-2 is pooled over all contexts' answers (Li et al.'s, the
goal's figure), and also within each context's 5 answers, averaged, beside
the mean answer length (a ratio over all bigrams falls as answers lengthen);
the perplexity with every response scored after another
response's context (a fixed shuffle) says whether a model reads its context
at all.  Training tokens/s is the mean over epochs; the parameter count of
each model is printed beside it (the flat baseline is sized to HRED's).
Every model trains at ``--batch-size`` (default: train's for dialogue, 8;
at 128, 300 steps in 10 epochs, every model stopped at a unigram plateau).
VHRED's KL weight rises over ``--kl-anneal-steps`` (default: the first half
of the run, so the second half trains on the whole bound); ``--bow-loss`` and
``--word-drop`` default to train's, as do its other settings.  Printed and
saved (``bench/results/dialogue.json``, with a table per seed): the median
over ``--seeds`` of each, HRED's perplexity over the flat baseline's, VHRED's
KL (collapse: below about 0.5 nats) and its distinct-2 beside HRED's at both
temperatures.

    .venv/bin/python bench/dialogue.py [--epochs 10] [--seeds 3] [--hidden 128] [--batch-size N] [--kl-anneal-steps N]
        [--bow-loss W] [--word-drop P] [--posterior-reads mean|rnn] [--learning-rate 0.001] [--clip-norm 1] [--low-temperature 0.5]
        [--results DIR]
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "dialogue" / "shakespeare"
sys.path.insert(0, str(ROOT))
from bench import record  # noqa: E402
from lm_app.config import CHOICES, TrainConfig  # noqa: E402

ARCHS = ("seq2seq", "hred", "vhred")
FIRST_SEED = 1111


def shuffled_context_perplexity(model, cfg, vocab, path):
    """Test perplexity with every response scored after another response's context (a fixed shuffle).

    Equal to the real contexts' perplexity when the model does not read its context at all.
    """
    import numpy as np

    from lm_app import losses
    from lm_app.dialogue.data import Examples, end_of_turn, read_dialogues

    examples = Examples(read_dialogues([path], vocab), cfg.context_turns, cfg.max_turn_words, end_of_turn(len(vocab)))
    examples.examples[:, :-1] = examples.examples[np.random.default_rng(0).permutation(len(examples)), :-1]
    sums = np.zeros(4)
    for x, y in examples.batches(64):
        sums += losses.totals(*model.token_losses(x, y)[:2]).numpy()
    return losses.perplexity(sums[0] / sums[3])


def run_one(arch, seed, args, work):
    """Train and evaluate one model in this process; its figures as a dict."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from lm_app import corpus, evaluate
    from lm_app.config import TrainConfig
    from lm_app.dialogue.evaluate import score_dialogues
    from lm_app.dialogue.models import dialogue_model
    from lm_app.train import train

    vocab = corpus.build_vocabulary(str(DATA / "train.txt"), min_count=3)
    vocab.save(work / "vocab.txt")
    cfg = TrainConfig(corpus=str(DATA / "train.txt"), valid_corpus=str(DATA / "valid.txt"),
                      test_corpus=str(DATA / "test.txt"), vocab=str(work / "vocab.txt"),
                      model_dir=str(work / arch), objective="dialogue", arch=arch, embedding=args.embedding,
                      hidden=args.hidden, epochs=args.epochs, patience=args.epochs, seed=seed,
                      batch_size=args.batch_size,
                      learning_rate=args.learning_rate, clip_norm=args.clip_norm,
                      **(dict(kl_anneal_steps=args.kl_anneal_steps, bow_loss=args.bow_loss, word_drop=args.word_drop,
                              posterior_reads=args.posterior_reads) if arch == "vhred" else {}))
    train(cfg, verbose=0, log=lambda *a: None)
    history = json.loads((work / arch / "history.json").read_text())
    test = evaluate.evaluate(work / arch, str(DATA / "test.txt"))
    model, cfg, vocab = evaluate.load_trained(work / arch)
    low = score_dialogues(model, cfg, vocab, [str(DATA / "test.txt")], temperature=args.low_temperature)
    parameters = sum(int(w.shape.num_elements()) for w in dialogue_model(cfg, len(vocab)).trainable_weights)
    return {"parameters": parameters, "perplexity": test["perplexity"], "kl_per_response": test.get("kl_per_response"),
            "perplexity_shuffled_contexts": shuffled_context_perplexity(model, cfg, vocab, str(DATA / "test.txt")),
            "distinct_1": test["distinct_1"], "distinct_2": test["distinct_2"],
            "distinct_2_low_temperature": low["distinct_2"],
            "distinct_2_per_context": test["distinct_2_per_context"],
            "distinct_2_per_context_low_temperature": low["distinct_2_per_context"],
            "answer_words": test["answer_words"], "answer_words_low_temperature": low["answer_words"],
            "tokens_per_second": statistics.mean(history["tokens_per_second"]),
            "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def steps_per_epoch(batch_size, context_turns=2):
    """Training batches per epoch of the Shakespeare dialogues (train's default context)."""
    text = (DATA / "train.txt").read_text(encoding="utf-8")
    dialogues = [d for d in text.split("\n\n") if d.strip()]
    responses = sum(max(0, len(d.strip().splitlines()) - context_turns) for d in dialogues)
    return -(-responses // batch_size)


def in_process(arch, seed, args):
    """One run in a fresh process: its figures."""
    with tempfile.TemporaryDirectory() as work:
        proc = subprocess.run([sys.executable, __file__, "--only", arch, "--seed", str(seed), "--work", work,
                               "--epochs", str(args.epochs), "--embedding", str(args.embedding),
                               "--hidden", str(args.hidden), "--batch-size", str(args.batch_size),
                               "--kl-anneal-steps", str(args.kl_anneal_steps),
                               "--learning-rate", str(args.learning_rate), "--clip-norm", str(args.clip_norm),
                               "--low-temperature", str(args.low_temperature), "--bow-loss", str(args.bow_loss),
                               "--word-drop", str(args.word_drop), "--posterior-reads", args.posterior_reads],
                              capture_output=True, text=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)))
        if proc.returncode:
            sys.exit(f"{arch} seed {seed} failed:\n{proc.stderr}")
        return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--embedding", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=TrainConfig(objective="dialogue").batch_size,
                        help="every model's (default: train's with --objective dialogue, %(default)s)")
    parser.add_argument("--kl-anneal-steps", type=int, default=None,
                        help="VHRED's (default: the steps of the first half of the run)")
    parser.add_argument("--bow-loss", type=float, default=TrainConfig.bow_loss,
                        help="VHRED's bag-of-words loss weight (default: train's, %(default)s)")
    parser.add_argument("--word-drop", type=float, default=TrainConfig.word_drop,
                        help="VHRED's decoder word drop (default: train's, %(default)s)")
    parser.add_argument("--posterior-reads", choices=CHOICES["posterior_reads"], default=TrainConfig.posterior_reads,
                        help="what VHRED's posterior reads of the response (default: train's, %(default)s)")
    parser.add_argument("--learning-rate", type=float, default=0.001, help="every model's (default: %(default)s)")
    parser.add_argument("--clip-norm", type=float, default=1.0, help="every model's (default: %(default)s)")
    parser.add_argument("--low-temperature", type=float, default=0.5,
                        help="distinct-2 is also measured at this temperature (default: %(default)s)")
    parser.add_argument("--only", choices=ARCHS, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=FIRST_SEED, help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    record.add_argument(parser)
    args = parser.parse_args(argv)
    if args.kl_anneal_steps is None:
        args.kl_anneal_steps = args.epochs * steps_per_epoch(args.batch_size) // 2
    if args.only:
        print(json.dumps(run_one(args.only, args.seed, args, Path(args.work))))
        return
    runs = {arch: [] for arch in ARCHS}
    for seed in range(FIRST_SEED, FIRST_SEED + args.seeds):
        for arch in ARCHS:
            runs[arch].append(in_process(arch, seed, args))
            print(f"seed {seed} {arch}: {runs[arch][-1]}", flush=True)

    def median(arch, key):
        return statistics.median(r[key] for r in runs[arch])

    keys = ("parameters", "perplexity", "perplexity_shuffled_contexts", "distinct_1", "distinct_2",
            "distinct_2_low_temperature", "distinct_2_per_context", "distinct_2_per_context_low_temperature",
            "answer_words", "answer_words_low_temperature", "tokens_per_second", "peak_mib")
    rows = [[arch, *(round(median(arch, k), 3) for k in keys)] for arch in ARCHS]
    figures = {"hred/seq2seq test perplexity": round(median("hred", "perplexity") / median("seq2seq", "perplexity"), 3),
               "vhred KL per response (nats)": round(median("vhred", "kl_per_response"), 3),
               "vhred/hred distinct-2": round(median("vhred", "distinct_2") / median("hred", "distinct_2"), 3),
               f"vhred/hred distinct-2 at temperature {args.low_temperature}":
                   round(median("vhred", "distinct_2_low_temperature") / median("hred", "distinct_2_low_temperature"), 3)}
    for row in rows:
        print(row)
    print(figures)
    per_seed = [[arch, FIRST_SEED + i, *(round(r[k], 3) for k in keys[1:]),
                 None if r["kl_per_response"] is None else round(r["kl_per_response"], 3)]
                for arch in ARCHS for i, r in enumerate(runs[arch])]
    recipe = (f"--batch-size {args.batch_size} --learning-rate {args.learning_rate} --clip-norm {args.clip_norm}; "
              "vhred: perplexity is the ELBO's "
              f"bound, --kl-anneal-steps {args.kl_anneal_steps}, --bow-loss {args.bow_loss}, --word-drop {args.word_drop}, "
              f"--posterior-reads {args.posterior_reads}; train's other defaults")
    record.save("dialogue", [record.table(f"median of {args.seeds} seeds, {args.epochs} epochs ({recipe})",
                                          ["arch", *keys], rows),
                             record.table("each seed", ["arch", "seed", *keys[1:], "kl_per_response"], per_seed)],
                figures, argv=sys.argv[1:] if argv is None else argv, results=args.results)


if __name__ == "__main__":
    main()

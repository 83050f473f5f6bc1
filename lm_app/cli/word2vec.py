"""The ``word2vec`` command: train CBOW or skip-gram vectors on the corpus, with build-dict's vocabulary."""
import dataclasses
import signal

from ..process import import_tensorflow


def cmd_word2vec(args):
    # Ctrl-C must save the state, even when a parent (a script's background job) ignored SIGINT.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from ..word2vec.config import Word2VecConfig

    names = {f.name for f in dataclasses.fields(Word2VecConfig)}
    typed = {k: v for k, v in vars(args).items() if k in names}
    cfg = Word2VecConfig.from_dict(typed)
    if not args.resume:
        cfg.validate()  # before TensorFlow loads: a bad flag is answered at once
    import_tensorflow()
    from ..word2vec.train import train

    train(cfg, resume=args.resume, fresh=args.fresh, given=set(typed))


def add_commands(sub):
    """Declare ``word2vec`` on ``sub``; flags not typed stay out of the arguments (``--resume`` keeps the run's)."""
    import argparse

    from ..config import SEED_MAX
    from ..word2vec.config import MODES, Word2VecConfig

    d = Word2VecConfig()
    p = sub.add_parser("word2vec", help="train word vectors (CBOW or skip-gram, negative sampling)",
                       argument_default=argparse.SUPPRESS,
                       description="Train word2vec vectors as gensim and word2vec.c do (negative "
                       "sampling, dynamic window, frequent-word subsampling, linearly decaying "
                       "learning rate) on the corpus, with build-dict's vocabulary: words it maps to "
                       "<unk> are left out. Writes vectors.txt (word2vec text format) and more into "
                       "--out; the state beside it (<out>.state) lets --resume continue after Ctrl-C.")
    g = p.add_argument_group("data")
    g.add_argument("--corpus", help=f"glob of text files (default: {d.corpus})")
    g.add_argument("--vocab", help=f"vocabulary from build-dict (default: {d.vocab})")
    g.add_argument("--out", help=f"output folder (default: {d.out})")
    g = p.add_argument_group("model", "defaults as gensim's Word2Vec")
    g.add_argument("--mode", choices=MODES, help=f"predict a word from its context (cbow) or the context "
                   f"from a word (skipgram) (default: {d.mode})")
    g.add_argument("--dim", type=int, help=f"vector size (default: {d.dim})")
    g.add_argument("--window", type=int, help=f"most context words each side (default: {d.window})")
    g.add_argument("--negative", type=int, help=f"noise words per pair (default: {d.negative})")
    g.add_argument("--sample", type=float, help=f"subsampling threshold of frequent words, 0 = off "
                   f"(default: {d.sample:g})")
    g = p.add_argument_group("training")
    g.add_argument("--epochs", type=int, help=f"passes over the corpus (default: {d.epochs})")
    g.add_argument("--learning-rate", type=float, help=f"starting rate (default: {d.learning_rate:g})")
    g.add_argument("--min-learning-rate", type=float, help=f"rate at the end; it falls linearly "
                   f"(default: {d.min_learning_rate:g})")
    g.add_argument("--threads", type=int, help=f"training threads (default: {d.threads})")
    g.add_argument("--seed", type=int, help=f"random seed, 0 to {SEED_MAX} (default: {d.seed})")
    g.add_argument("--batch-words", type=int, help=f"words per training call (default: {d.batch_words:,})")
    g.add_argument("--save-every", type=int, help=f"batches between checkpoints, besides each epoch's "
                   f"end (default: {d.save_every})")
    g.add_argument("--resume", action="store_true", default=False,
                   help="continue the interrupted run for --out with its saved settings")
    g.add_argument("--fresh", action="store_true", default=False,
                   help="discard an unfinished run for --out and start again")
    p.set_defaults(func=cmd_word2vec)

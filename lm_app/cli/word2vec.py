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
    groups = {
        ("data", None): [("corpus", "glob of text files"), ("vocab", "vocabulary from build-dict"),
                         ("out", "output folder")],
        ("model", "defaults as gensim's Word2Vec"): [
            ("mode", "predict a word from its context (cbow) or the context from a word (skipgram)"),
            ("dim", "vector size"), ("window", "most context words each side"),
            ("negative", "noise words per pair"), ("sample", "subsampling threshold of frequent words, 0 = off")],
        ("training", None): [
            ("epochs", "passes over the corpus"), ("learning_rate", "starting rate"),
            ("min_learning_rate", "rate at the end; it falls linearly"), ("threads", "training threads"),
            ("seed", f"random seed, 0 to {SEED_MAX}"), ("batch_words", "words per training call"),
            ("save_every", "batches between checkpoints, besides each epoch's end")],
    }
    for (title, description), flags in groups.items():
        g = p.add_argument_group(title, description)
        for name, text in flags:
            default = getattr(d, name)
            g.add_argument("--" + name.replace("_", "-"), type=type(default), choices=MODES if name == "mode" else None,
                           help=f"{text} (default: {default:g})" if isinstance(default, float)
                           else f"{text} (default: {default})")
    g.add_argument("--resume", action="store_true", default=False,
                   help="continue the interrupted run for --out with its saved settings")
    g.add_argument("--fresh", action="store_true", default=False,
                   help="discard an unfinished run for --out and start again")
    p.set_defaults(func=cmd_word2vec)

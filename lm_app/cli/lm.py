"""The language model's commands: build-dict, train, evaluate, predict, generate, serve and export."""
import argparse
import dataclasses
import json
import os
import signal
import sys

from ..errors import UsageError
from ..process import ByteProgress, import_tensorflow, non_negative_int, port_number
from ..text import has_words
from . import dialogue


def cmd_build_dict(args):
    from .. import corpus

    files = corpus.find_files(args.corpus)
    progress = ByteProgress(sum(os.path.getsize(f) for f in files), "reading")
    try:
        vocab = corpus.build_vocabulary(args.corpus, args.min_count,
                                        "pretokenized" if args.pretokenized else "words",
                                        args.encoding, args.errors, progress)
    finally:
        progress.close()
    vocab.save(args.vocab)
    meta = vocab.meta
    print(f"read {len(meta['files'])} file(s): {meta['tokens']:,} tokens")
    print(f"vocabulary: {len(vocab):,} entries (words seen more than {args.min_count} times, "
          f"plus <pad> and <unk>)")
    print(f"<unk>: {meta['unk_tokens']:,} tokens ({meta['unk_tokens'] / meta['tokens']:.1%})")
    print(f"wrote {args.vocab} and {corpus.meta_path(args.vocab)}")


def cmd_train(args):
    # Ctrl-C must save and export, even when a parent (a script's background job) ignored SIGINT.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from ..config import TrainConfig

    cfg = TrainConfig.from_flags(vars(args))  # the flags not typed are absent: the preset's or the defaults
    given = set(vars(args)) & {f.name for f in dataclasses.fields(TrainConfig)}
    if not args.resume:  # before TensorFlow loads: a bad flag is answered at once
        cfg.validate()  # (a resumed run's settings are checked once merged with the run's own)
    import_tensorflow()
    from ..train import describe_metrics, train

    metrics = train(cfg, resume=args.resume, fresh=args.fresh, given=given, force=args.force)
    print(describe_metrics(metrics))


def text_argument(text, what, mode=None):
    """TEXT as given, or stdin for ``-``; checked before TensorFlow loads.

    Empty text is a usage error; with the model's ``mode``, so is text that
    keeps no word after normalisation (the rule ``serve`` applies too).
    """
    if text == "-":
        text = sys.stdin.buffer.read().decode("utf-8", errors="replace")
    if mode is not None and not has_words(text, mode):
        raise UsageError(f"the text to {what} has no words: it is empty after normalisation")
    if not text.strip():
        raise UsageError(f"the text to {what} is empty")
    return text


def cmd_predict(args):
    from .. import predict
    from ..config import PredictConfig

    PredictConfig(args.top_k, args.show_attention, args.attention_png).validate()
    args.attention_png = args.attention_png or "attention.png"

    args.text = text_argument(args.text, "predict from", predict.model_mode(args.model_dir))
    import_tensorflow()

    result = predict.predict(predict.load(args.model_dir), [args.text], args.top_k)[0]
    if args.show_attention:
        if "attention" not in result:
            raise UsageError("this model has no attention (train it with --arch attention or seq2seq)")
        from ..atomic import atomic_path

        with atomic_path(args.attention_png) as tmp:
            tmp.write_bytes(predict.attention_png(result))
    if args.json:
        keys = ("input", "context", "prediction", "top_k", "continuation", "log_prob")
        if args.show_attention:
            keys += ("attention",)
        print(json.dumps({k: result[k] for k in keys if k in result}))
    else:
        print(predict.format_result(result, args.show_attention))
    if args.show_attention:
        print(f"wrote the attention heat map to {args.attention_png}", file=sys.stderr)


def cmd_generate(args):
    from ..config import GenerateConfig
    from ..generate import Generator
    from ..predict import model_mode, shown

    args.text = text_argument(args.text, "continue", model_mode(args.model_dir))
    settings = GenerateConfig(args.words, args.temperature, args.top_k, args.top_p, args.beam, args.greedy,
                              args.seed).validate()  # before TensorFlow loads
    import_tensorflow()
    result = Generator(args.model_dir).generate(args.text, **dataclasses.asdict(settings))
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{shown(args.text)} {result['continuation']}")
        print(f"(log-probability {result['log_prob']:.2f})", file=sys.stderr)


def cmd_evaluate(args):
    if args.embeddings:
        from ..word2vec.vectors import read_header

        read_header(args.embeddings)  # a missing or malformed file is answered before TensorFlow loads
    import_tensorflow()
    from .. import evaluate

    rows = {} if args.rows is None else {"rows": args.rows}
    report = evaluate.evaluate(args.model_dir, args.corpus, args.pretokenized, args.embeddings, **rows)
    print(json.dumps(report) if args.json else evaluate.format_report(report))


def cmd_serve(args):
    from .. import serve

    limits = serve.Limits(**{f.name: getattr(args, f.name) for f in dataclasses.fields(serve.Limits)})
    serve.run(args.model_dir, args.host, args.port, args.name, limits)


def cmd_export(args):
    from .. import tflite

    tflite.check_supported(args.model_dir)  # refuse at once, before TensorFlow loads
    import_tensorflow()
    result = tflite.export_tflite(args.model_dir, args.out)
    ops = ("builtin ops only" if not result["select_tf_ops"]
           else "needs SELECT_TF_OPS: builtins were not enough, link the Flex delegate")
    print(f"wrote {result['path']} ({result['bytes'] / 1024:.1f} KiB): ids int32 [1, {result['window']}] "
          f"-> probabilities float32 [1, {result['vocab_size']}]; {ops}")


def only_when_typed(parser, names):
    """Leave the flags ``names`` out of the parsed arguments unless typed; ``--help`` still shows their defaults.

    ``train --resume`` keeps the run's settings for every flag not typed, and
    must refuse a typed one that changes the run: it has to know which is which.
    """
    for action in parser._actions:
        if action.dest in names and action.default is not argparse.SUPPRESS:
            if action.help:
                action.help = action.help.replace("%(default)s", str(action.default))
            action.default = argparse.SUPPRESS


def add_serve_parser(sub, model_dir_default):
    """``serve``'s flags; its limits, their defaults and help come from :class:`serve.Limits`."""
    from ..serve import DEFAULT_NAME, DEFAULT_PORT, Limits  # no TensorFlow or aiohttp: they load when it runs

    p = sub.add_parser("serve", help="serve the SavedModel over TensorFlow Serving's REST API",
                       description="Serve the exported SavedModel on TensorFlow Serving's REST "
                       "predict API: POST /v1/models/NAME:predict with {\"instances\": [text, "
                       "...]} or {\"inputs\": [...]}; GET /v1/models/NAME for its status and "
                       "/v1/models/NAME/metadata for its signature. Concurrent requests are "
                       "batched into one model call. Requests must name this server in Host "
                       "(localhost, 127.0.0.1, [::1] or --host, with the port) and POST "
                       "application/json, so a web page cannot use it. Ctrl-C or SIGTERM stops it "
                       "cleanly.")
    p.add_argument("--model-dir", default=model_dir_default, help="exported model (default: %(default)s)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on; 0.0.0.0 exposes it to the network (default: %(default)s)")
    p.add_argument("--port", type=port_number, default=DEFAULT_PORT,
                   help="TCP port, 0 = any free one (default: %(default)s)")
    p.add_argument("--name", default=DEFAULT_NAME,
                   help="model name in the URLs, /v1/models/NAME (default: %(default)s)")
    for limit in dataclasses.fields(Limits):
        p.add_argument("--" + limit.name.replace("_", "-"), default=limit.default,
                       type=int if limit.type is int else float,
                       metavar=limit.metadata["metavar"],
                       help=f"{limit.metadata['help']} (default: %(default)s)")
    p.set_defaults(func=cmd_serve)


def add_commands(sub):
    """Declare the language model's sub-commands on ``sub`` (the top parser's sub-parsers)."""
    from ..config import (CHOICES, ONEHOT, PRESETS, SEED_MAX, TrainConfig, cutoff_list, embedding_size,
                         per_objective, preset_flags)

    defaults = TrainConfig()
    p = sub.add_parser("build-dict", help="count the corpus and write the vocabulary",
                       description="Count the words of the corpus and write vocab.txt "
                       "(token<TAB>count, id = line number) and vocab.json beside it.")
    p.add_argument("--corpus", default=defaults.corpus,
                   help="recursive glob of text files, quoted (default: %(default)s)")
    p.add_argument("--vocab", default=defaults.vocab, help="output path (default: %(default)s)")
    p.add_argument("--min-count", type=non_negative_int, default=3,
                   help="words seen this many times or fewer become <unk> (default: %(default)s)")
    p.add_argument("--pretokenized", action="store_true",
                   help="Penn-Treebank-style files: split on spaces, keep tokens, <eos> per line")
    p.add_argument("--encoding", default="utf-8", help="encoding of the files (default: %(default)s)")
    p.add_argument("--errors", default="strict", choices=("strict", "replace", "ignore"),
                   help="what to do with bytes that do not decode (default: %(default)s)")
    p.set_defaults(func=cmd_build_dict)

    p = sub.add_parser("train", help="train a model and export it as a SavedModel",
                       description="Train on windows of --window words that predict the next "
                       "one, keep the best weights by validation loss, and export a SavedModel "
                       "that serves raw text.")
    g = p.add_argument_group("data", "what it reads and how it is cut into examples")
    g.add_argument("--corpus", default=defaults.corpus, help="glob of text files (default: %(default)s)")
    g.add_argument("--vocab", default=defaults.vocab, help="vocabulary from build-dict (default: %(default)s)")
    g.add_argument("--valid-corpus", default=defaults.valid_corpus,
                   help="glob of held-out text that picks the weights; without it --valid-fraction "
                   "of the corpus is held out (default: none)")
    g.add_argument("--test-corpus", default=defaults.test_corpus,
                   help="glob of text scored once at the end, never trained or selected on; without "
                   "it --test-fraction of the corpus is held out (default: none)")
    g.add_argument("--valid-fraction", type=float, default=defaults.valid_fraction,
                   help="share of the corpus held out, in contiguous blocks, to pick the weights and "
                   "drive early stopping and --lr-decay, in (0, 0.5] (default: %(default)s)")
    g.add_argument("--test-fraction", type=float, default=defaults.test_fraction,
                   help="share held out, in contiguous blocks, for the final test figures only; "
                   "0 = none; at most 0.5 with --valid-fraction (default: %(default)s)")
    g.add_argument("--objective", default=defaults.objective, choices=CHOICES["objective"],
                   help="window: --window words predict the next (the notes'); stream: the "
                   "standard protocol, contiguous rows read --bptt tokens at a time with the "
                   "state carried over; dialogue: responses to --context-turns turns (default: %(default)s)")
    g.add_argument("--window", type=int, default=defaults.window,
                   help="words of context per example, --objective window only (default: %(default)s)")
    g.add_argument("--bptt", type=int, default=defaults.bptt,
                   help="tokens per chunk, --objective stream only (default: %(default)s)")
    g = p.add_argument_group("model", "the network and what its export returns")
    g.add_argument("--preset", default=defaults.preset, choices=tuple(PRESETS),
                   help="start from a named configuration; the flags typed override it. notes: the "
                   f"notes' predictor: {preset_flags('notes')} (default: none)")
    g.add_argument("--arch", default=defaults.arch, choices=CHOICES["arch"],
                   help="simple RNN, LSTM or GRU layers; attention: the last state attends over "
                   "the window; seq2seq: an encoder-decoder writing the next --target-len words "
                   "(with --objective dialogue: the flat baseline); hred, vhred: dialogue models (default: %(default)s)")
    g.add_argument("--cell", default=defaults.cell, choices=CHOICES["cell"],
                   help="the cell of --arch attention, seq2seq, hred and vhred only (default: %(default)s)")
    g.add_argument("--score", default=defaults.score, choices=CHOICES["score"],
                   help="attention score of --arch attention and seq2seq only: Luong general or "
                   "dot, Bahdanau additive (default: %(default)s)")
    g.add_argument("--target-len", type=int, default=defaults.target_len,
                   help="words the decoder writes, --arch seq2seq only (default: %(default)s)")
    g.add_argument("--peephole", action="store_true",
                   help="LSTM peephole connections: the gates also see the cell state (--arch "
                   "lstm, or attention with --cell lstm; default: off)")
    g.add_argument("--embedding", type=embedding_size, default=defaults.embedding,
                   help=f"embedding size, or {ONEHOT}: the notes' one-hot input, --arch rnn, lstm "
                   "and gru with --objective window only (default: %(default)s)")
    g.add_argument("--hidden", type=int, default=defaults.hidden,
                   help="recurrent units per layer (default: %(default)s)")
    g.add_argument("--layers", type=int, default=defaults.layers,
                   help="recurrent layers, --arch rnn, lstm and gru only (default: %(default)s)")
    g.add_argument("--dropout", type=float, default=defaults.dropout,
                   help="dropout on inputs and outputs, in [0, 1); not --arch seq2seq (default: %(default)s)")
    g.add_argument("--tied", action="store_true",
                   help="share the embedding and softmax weights, --objective stream only (needs "
                   "--embedding = --hidden; default: off)")
    g.add_argument("--softmax", default=defaults.softmax, choices=CHOICES["softmax"],
                   help="adaptive: the frequent words in a head, the rare ones in smaller tail clusters "
                   "(Grave et al. 2017), far faster on a large vocabulary; --objective stream, or window "
                   "with --arch rnn, lstm or gru (default: %(default)s)")
    g.add_argument("--cutoffs", type=cutoff_list, default=defaults.cutoffs, metavar="N,N,...",
                   help="--softmax adaptive: the ids (most frequent first) where the head and each tail "
                   "cluster end, increasing, below the vocabulary's size (default: 2000,10000)")
    g.add_argument("--top-k", type=int, default=defaults.top_k,
                   help="next words the exported model returns (default: %(default)s)")
    g.add_argument("--init-embedding", default=defaults.init_embedding, metavar="VECTORS",
                   help="start the input embedding from word vectors in the word2vec text format "
                   "(word2vec's vectors.txt): the vocabulary's words found there start from their "
                   "vectors, the others at random; needs their dimension = --embedding (default: none)")
    g.add_argument("--freeze-embedding", action="store_true",
                   help="keep the --init-embedding vectors fixed while training; not with --tied "
                   "(default: off)")
    g = p.add_argument_group("optimisation", "how the weights are fitted")
    g.add_argument("--optimizer", default=defaults.optimizer, choices=CHOICES["optimizer"],
                   help="(default: %(default)s)")
    g.add_argument("--learning-rate", type=float, default=None,
                   help=f"initial learning rate (default: {per_objective('learning_rate')})")
    g.add_argument("--lr-decay", type=float, default=None,
                   help="divide the learning rate by this after an epoch without validation "
                   f"improvement, 1 = never, a constant rate (default: {per_objective('lr_decay')})")
    g.add_argument("--clip-norm", type=float, default=None,
                   help=f"clip the gradient to this global norm, 0 = off (default: {per_objective('clip_norm')})")
    g.add_argument("--batch-size", type=int, default=None,
                   help="windows per batch, rows with --objective stream, responses with dialogue "
                   f"(default: {per_objective('batch_size')})")
    g.add_argument("--epochs", type=int, default=defaults.epochs,
                   help="most epochs; stops early when validation loss stalls (default: %(default)s)")
    g.add_argument("--patience", type=int, default=defaults.patience,
                   help="epochs without improvement before stopping (default: %(default)s)")
    g = p.add_argument_group("run control", "where it writes, seeds, saves and resumes")
    g.add_argument("--model-dir", default=defaults.model_dir, help="output folder (default: %(default)s)")
    g.add_argument("--seed", type=int, default=defaults.seed,
                   help=f"random seed, 0 to {SEED_MAX} (default: %(default)s)")
    g.add_argument("--save-every", type=int, default=defaults.save_every,
                   help="also save the full training state every N steps, 0 = only at epoch "
                   "ends (default: %(default)s)")
    g.add_argument("--resume", action="store_true",
                   help="continue the interrupted run in --model-dir with its saved settings")
    g.add_argument("--fresh", action="store_true",
                   help="discard an unfinished run in --model-dir and start again")
    g.add_argument("--force", action="store_true",
                   help="with --resume: continue even though the corpus changed since the run started")
    g = p.add_argument_group("distribution", "the devices and machines it trains on")
    g.add_argument("--strategy", default=defaults.strategy, choices=CHOICES["strategy"],
                   help="tf.distribute: one device, all local devices (mirrored), or the "
                   "machines of the TF_CONFIG cluster (multi-worker); --objective stream gives each "
                   "replica its share of the --batch-size rows (default: %(default)s)")
    dialogue.add_train_flags(p, defaults)
    p.set_defaults(func=cmd_train)
    only_when_typed(p, {f.name for f in dataclasses.fields(TrainConfig)})

    p = sub.add_parser("evaluate", help="perplexity and accuracy of a trained model on a corpus",
                       description="Score every predicted token of the corpus (streaming): "
                       "cross-entropy, perplexity = exp(mean NLL), accuracy, top-5 accuracy, the "
                       "share of <unk> tokens and the speed. The corpus is tokenized as the model's "
                       "vocabulary was (plain or --pretokenized).")
    p.add_argument("--model-dir", default=defaults.model_dir, help="trained model (default: %(default)s)")
    p.add_argument("--corpus", required=True, help="glob of held-out text files")
    p.add_argument("--pretokenized", action="store_true",
                   help="the corpus is Penn-Treebank style; required for a model trained on such a "
                   "vocabulary and refused otherwise (default: plain text)")
    p.add_argument("--embeddings", default=None, metavar="VECTORS",
                   help="dialogue models: also score the sampled answers against the references by "
                   "embedding Average, Greedy and Extrema (Liu et al. 2016) with these word vectors, "
                   "e.g. word2vec's vectors.txt (default: none)")
    p.add_argument("--rows", type=dialogue.positive_int, default=None,
                   help="stream models: rows of the corpus scored side by side, each after a burn-in "
                   "of the tokens before it (default: 64); 1 gives every token its whole history, "
                   "slower")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("predict", help="predict the next word of a text",
                       description="Predict the next word from the last --window words of TEXT, "
                       "using only the exported SavedModel.")
    p.add_argument("text", metavar="TEXT", help="the text to continue; - reads it from stdin")
    p.add_argument("--model-dir", default=defaults.model_dir, help="exported model (default: %(default)s)")
    p.add_argument("--top-k", type=int, default=None,
                   help="words to list, at most the model's exported top-k (train --top-k) "
                   "(default: 5, or the model's top-k if that is fewer)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument("--show-attention", action="store_true",
                   help="print each context word's attention weight and write a PNG heat map "
                   "(--arch attention and seq2seq models)")
    p.add_argument("--attention-png", default=None,
                   help="where --show-attention writes its heat map (default: attention.png)")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("generate", help="continue a text word by word",
                       description="Continue TEXT from the exported SavedModel alone: each chosen "
                       "word is fed back (the seq2seq decoder for seq2seq models). Sampling is "
                       "reproducible with --seed; --greedy, --temperature 0, --top-k 1 and --beam 1 "
                       "all take the most likely word. --beam, --greedy and --temperature 0 do not "
                       "sample: the sampling flags are refused beside them.")
    p.add_argument("text", metavar="TEXT", help="the text to continue; - reads it from stdin")
    p.add_argument("--model-dir", default=defaults.model_dir, help="exported model (default: %(default)s)")
    p.add_argument("--words", type=int, default=10, help="words to add (default: %(default)s)")
    p.add_argument("--temperature", type=float, default=None,
                   help="below 1 sharper, above 1 flatter, 0 greedy (default: 1)")
    p.add_argument("--top-k", type=int, default=None,
                   help="sample among the k most likely words only, 0 = all (default: 0)")
    p.add_argument("--top-p", type=float, default=None,
                   help="sample among the fewest most likely words whose probability reaches p, "
                   "in (0, 1] (default: 1, no cut)")
    p.add_argument("--beam", type=int, default=None,
                   help="beam search with this many hypotheses instead of sampling (default: "
                   "none, sample)")
    p.add_argument("--greedy", action="store_true",
                   help="always take the most likely word (default: sample)")
    p.add_argument("--seed", type=int, default=None,
                   help=f"seed of the sampling, 0 to {SEED_MAX} (default: none, a fresh draw each run)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_generate)
    add_serve_parser(sub, defaults.model_dir)

    from ..tflite import SUPPORTED

    p = sub.add_parser("export", help="write the trained network in another format (TFLite)",
                       description="Write the trained next-word network as a TensorFlow Lite model: "
                       "int32 ids [1, window] (the last --window token ids, left-padded with 0) -> "
                       "float32 probabilities [1, vocabulary]. Window models of --arch "
                       f"{', '.join(SUPPORTED)} only.")
    p.add_argument("--format", default="tflite", choices=("tflite",),
                   help="output format (default: %(default)s)")
    p.add_argument("--model-dir", default=defaults.model_dir, help="trained model (default: %(default)s)")
    p.add_argument("--out", default=None, help="output file (default: MODEL_DIR/model.tflite)")
    p.set_defaults(func=cmd_export)

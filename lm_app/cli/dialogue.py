"""The dialogue family's command line: ``train --objective dialogue``'s flags and ``respond``."""
import argparse
import json
import sys

from ..errors import UsageError
from ..process import import_tensorflow


TRAIN_FLAGS = (  # (group, setting, type, help): train's dialogue flags, in the groups of its help
    ("data", "context_turns", int, "--objective dialogue: turns of context each response answers; every later "
     "turn of a dialogue (one turn per line, a blank line between dialogues) is a response"),
    ("data", "max_turn_words", int, "--objective dialogue: words kept of each turn, longer turns are cut"),
    ("model", "kl_anneal_steps", int, "--arch vhred: steps over which the KL weight rises from 0 to 1"),
    ("model", "word_drop", float, "--arch vhred: share of the decoder's input words replaced by <unk> in "
     "training, against posterior collapse"),
    ("model", "kl_free_nats", float, "--arch vhred: nats of each response's KL that cost nothing in "
     "training (free bits, Kingma et al. 2016; not in VHRED's paper), against posterior collapse; "
     "0: the whole KL"),
    ("model", "bow_loss", float, "--arch vhred: weight of the bag-of-words loss (Zhao et al. 2017): in "
     "training, the response's words are also predicted at once from the context and z, so z must carry "
     "them, against posterior collapse; 0: off"),
    ("model", "posterior_reads", str, "--arch vhred: what the posterior reads of the response: mean (the "
     "mean of its words' embeddings: which words, not how many) or rnn (the papers' utterance RNN, whose "
     "state also says how long it is, so z became a length code that temperature cannot shorten)"),
)

METAVARS = {"kl_free_nats": "NATS", "bow_loss": "WEIGHT", "posterior_reads": "{mean,rnn}"}


def add_train_flags(p, defaults):
    """``train``'s dialogue flags, each in the group of the train parser it belongs to (called from :mod:`.lm`)."""
    groups = {g.title: g for g in p._action_groups}
    for group, name, kind, text in TRAIN_FLAGS:
        groups[group].add_argument("--" + name.replace("_", "-"), type=kind, default=getattr(defaults, name),
                                   metavar=METAVARS.get(name, "N" if kind is int else "SHARE"),
                                   help=text + " (default: %(default)s)")


SAMPLING_FLAGS = (  # (setting, type, help): respond's flags of generate's sampling (config.SAMPLING)
    ("temperature", float, "divides the log-probabilities before sampling (default: 1)"),
    ("top_k", int, "sample among the k most likely words only (default: all)"),
    ("top_p", float, "nucleus sampling, the most likely words up to this total probability (default: 1, no cut)"),
    ("seed", int, "replays the same answers, VHRED's z included (default: a fresh draw)"),
)


def positive_int(text):
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def cmd_respond(args):
    from ..config import SAMPLING, GenerateConfig
    from ..dialogue.respond import check_model, check_some, check_words, respond
    from ..predict import model_mode

    turns = args.turns
    if turns == ["-"]:
        turns = [line for line in sys.stdin.buffer.read().decode("utf-8", "replace").splitlines() if line.strip()]
    check_some(turns)
    settings = GenerateConfig(1, args.temperature, args.top_k, args.top_p, args.beam, False, args.seed).validate()
    typed = [name for name in SAMPLING if getattr(args, name) is not None]
    if args.beam and args.samples:
        raise UsageError("--beam and --samples do not go together: beam search gives its best answer")
    if typed and not args.samples:
        raise UsageError(f"--{typed[0].replace('_', '-')} acts with --samples only (without it the answer is greedy)")
    check_model(args.model_dir)  # before TensorFlow loads: a wrong folder is answered at once
    check_words(turns, model_mode(args.model_dir))
    import_tensorflow()
    answers = respond(args.model_dir, turns, args.samples or 0, settings.decoding())
    if args.json:
        print(json.dumps({"turns": turns, "responses": answers}))
        return
    for answer in answers:
        print(answer["response"])


def cmd_chat(args):
    from ..dialogue.respond import chat, check_model
    from ..predict import model_mode

    check_model(args.model_dir)
    import_tensorflow()
    prompt = sys.stdin.isatty()

    def lines():
        while True:
            if prompt:
                print("> ", end="", flush=True)
            line = sys.stdin.readline()
            if not line:  # Ctrl-D, or the end of piped input
                return
            yield line

    try:
        chat(args.model_dir, lines(), lambda answer: print(answer, flush=True), model_mode(args.model_dir))
    except KeyboardInterrupt:  # Ctrl-C ends a chat as Ctrl-D does: it is how people leave
        pass
    if prompt:
        print()


def add_commands(sub):
    """``respond`` and ``chat``: the next turn of a conversation."""
    p = sub.add_parser("respond", help="write the next turn of a conversation (a dialogue model)",
                       description="Answer the conversation so far with a model trained with --objective "
                       "dialogue: each TURN is one argument, oldest first (only the model's last "
                       "--context-turns count); - reads the turns from stdin, one per line. Greedy by "
                       "default; --samples draws that many answers word by word as generate does "
                       "(VHRED also draws its z).")
    p.add_argument("turns", nargs="*", metavar="TURN", help="the turns so far, oldest first, or -")
    p.add_argument("--model-dir", default="saved_models/dialogue", help="trained dialogue model (default: %(default)s)")
    p.add_argument("--samples", type=positive_int, default=None,
                   help="sample this many answers instead of the greedy one (default: greedy)")
    p.add_argument("--beam", type=positive_int, default=None,
                   help="the best answer of a beam search of this width, VHRED's z at the prior's mean "
                   "(default: none, greedy)")
    for name, kind, text in SAMPLING_FLAGS:
        p.add_argument("--" + name.replace("_", "-"), type=kind, default=None, help="with --samples: " + text)
    p.add_argument("--json", action="store_true", help="print the turns and answers as JSON")
    p.set_defaults(func=cmd_respond)

    p = sub.add_parser("chat", help="talk with a dialogue model, one line per turn",
                       description="An interactive loop: each line you type is a turn, the model "
                       "answers it; the last --context-turns turns (yours and its) are the context. "
                       "/reset clears them; Ctrl-D or Ctrl-C ends the chat.")
    p.add_argument("--model-dir", default="saved_models/dialogue", help="trained dialogue model (default: %(default)s)")
    p.set_defaults(func=cmd_chat)

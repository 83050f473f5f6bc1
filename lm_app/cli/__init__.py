"""Command line: ``python -m lm_app COMMAND``; each model family declares its commands in a module here.

Every sub-command's flags are declared in this package; the modules behind
them are libraries with plain functions and never import it.  A new family
adds a module with an ``add_commands(sub)`` and one line in :func:`make_parser`.

Bad input ends in one line on stderr and exit code 2, never a traceback.
TensorFlow is imported only by the commands that need it, so ``--help`` and
``build-dict`` start at once.
"""
import argparse
import sys

from ..errors import UsageError
from . import dialogue, embeddings, lm, word2vec

PROG = "lm_app"


class Parser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def make_parser():
    parser = Parser(prog=PROG, description="A word-level next-word predictor: build a "
                    "vocabulary, train a recurrent model on it, predict the next word.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                parser_class=Parser)
    lm.add_commands(sub)
    dialogue.add_commands(sub)
    word2vec.add_commands(sub)
    embeddings.add_commands(sub)
    parser.commands = sub.choices
    return parser


def main(argv=None):
    parser = make_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # blamed on the command, as its own errors are: "lm_app train: error: ..."
        parser.commands[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        args.func(args)
    except UsageError as e:
        message = " ".join(str(e).split())  # one line, whatever a library put in the message
        print(f"{PROG} {args.command}: error: {message[:500]}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0

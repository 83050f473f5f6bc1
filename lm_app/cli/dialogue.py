"""The dialogue family's command line: ``train --objective dialogue``'s flags and ``respond``."""


def add_train_flags(p, defaults):
    """``train``'s dialogue flags, in their own group of the train parser (called from :mod:`.lm`)."""
    g = p.add_argument_group("dialogue", "--objective dialogue: one turn per line, a blank line between dialogues")
    g.add_argument("--context-turns", type=int, default=defaults.context_turns,
                   help="turns of context each response answers; every later turn of a dialogue is "
                   "a response (default: %(default)s)")
    g.add_argument("--max-turn-words", type=int, default=defaults.max_turn_words,
                   help="words kept of each turn, longer turns are cut (default: %(default)s)")
    g.add_argument("--kl-anneal-steps", type=int, default=defaults.kl_anneal_steps,
                   help="--arch vhred: steps over which the KL weight rises from 0 to 1 "
                   "(default: %(default)s)")
    g.add_argument("--word-drop", type=float, default=defaults.word_drop,
                   help="--arch vhred: share of the decoder's input words replaced by <unk> in "
                   "training, against posterior collapse (default: %(default)s)")

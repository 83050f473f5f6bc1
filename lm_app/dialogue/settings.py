"""``train --objective dialogue``'s settings and rules, apart from config.py so that file stays short.

TrainConfig holds the fields (they are flags and go to config.json like any
other); the rules that only concern dialogue live here and are called from
``TrainConfig.validate`` and ``TrainConfig.conflicts``.  No TensorFlow here.
"""
ARCHS = ("hred", "vhred", "seq2seq")
FIELDS = ("context_turns", "max_turn_words", "kl_anneal_steps", "word_drop", "kl_free_nats", "bow_loss",
          "posterior_reads")
VHRED_ONLY = ("kl_anneal_steps", "word_drop", "kl_free_nats", "bow_loss", "posterior_reads")
# Window and decoder settings of the language models that a dialogue run would silently ignore.
IGNORED = ("window", "target_len", "score", "dropout", "layers", "top_k")


def flag(name):
    return "--" + name.replace("_", "-")


def ranges(cfg):
    """``(name, ok, rule)`` for config.check_ranges: the values a dialogue run accepts."""
    return [
        ("context_turns", cfg.context_turns > 0, "must be a positive integer (the turns a response answers)"),
        ("max_turn_words", cfg.max_turn_words > 0, "must be a positive integer"),
        ("kl_anneal_steps", cfg.kl_anneal_steps >= 0, "must be 0 (the full KL at once) or more"),
        ("word_drop", 0 <= cfg.word_drop < 1, "must be in [0, 1)"),
        ("kl_free_nats", cfg.kl_free_nats >= 0, "must be 0 (the whole KL) or more"),
        ("bow_loss", cfg.bow_loss >= 0, "must be 0 (off) or more"),
    ]


def conflicts(cfg, changed):
    """Why a dialogue setting cannot act: the wrong objective for the arch, or a flag this run ignores."""
    arch = cfg.arch
    if cfg.objective != "dialogue":
        if arch in ("hred", "vhred"):
            yield f"--arch {arch} reads dialogues: use --objective dialogue"
        for name in FIELDS:
            if name in changed:
                yield f"{flag(name)} acts with --objective dialogue only"
        return
    if arch not in ARCHS:
        yield f"--objective dialogue needs --arch {', '.join(ARCHS)}, got {arch}"
    for name in VHRED_ONLY:
        if name in changed and arch != "vhred":
            yield f"{flag(name)} acts with --arch vhred only"
    for name in IGNORED:
        if name in changed:
            yield f"{flag(name)} does not act with --objective dialogue"
    if cfg.strategy != "default":
        yield "--objective dialogue trains on one device"

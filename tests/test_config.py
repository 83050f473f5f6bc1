"""Every flag acts or is refused: one rule per line of a table, checked through the CLI in-process."""
import dataclasses
import json
import math

import pytest

from lm_app.cli import make_parser
from lm_app.config import TrainConfig
from tests.conftest import assert_one_line_error, cycle_corpus, main_in_process

REFUSED = [
    # the held-out shares' rule, as the split rounds them: 3/13 + 3/11 > 1/2 though 0.23 + 0.27 is not
    (["train", "--valid-fraction", "0.23", "--test-fraction", "0.27"], "at most 0.5 together"),
    # ranges (#12.18): one line, exit 2, the flag named, the same seed range in train and generate
    (["train", "--seed", "-5"], "--seed must be in [0, 4294967295], got -5"),
    (["train", "--seed", "99999999999"], "--seed must be in [0, 4294967295]"),
    (["generate", "x", "--seed", "-5"], "--seed must be in [0, 4294967295], got -5"),
    (["generate", "x", "--seed", "99999999999"], "--seed must be in [0, 4294967295]"),
    (["train", "--clip-norm", "-1"], "--clip-norm must be 0 (off) or more, got -1.0"),
    (["train", "--save-every", "-1"], "--save-every must be 0"),
    (["train", "--valid-fraction", "0.7"], "--valid-fraction must be in (0, 0.5], got 0.7"),
    (["train", "--valid-fraction", "0"], "--valid-fraction must be in (0, 0.5], got 0.0"),
    (["train", "--dropout", "1"], "--dropout must be in [0, 1)"),
    (["train", "--lr-decay", "0.5"], "--lr-decay must be 1 (off) or more"),
    (["train", "--learning-rate", "0"], "--learning-rate must be positive"),
    (["train", "--hidden", "0"], "--hidden must be a positive integer, got 0"),
    (["train", "--window", "-3"], "--window must be a positive integer, got -3"),
    (["train", "--target-len", "0", "--arch", "seq2seq"], "--target-len must be a positive integer"),
    (["train", "--hidden", "abc"], "argument --hidden: invalid int value"),  # argparse's, same prefix
    # flags the run would ignore (#12.17)
    (["train", "--valid-corpus", "missing.txt"], "--valid-corpus: 'missing.txt' does not exist"),
    (["train", "--tied", "--embedding", "8", "--hidden", "8"], "--tied acts with --objective stream only"),
    (["train", "--bptt", "20"], "--bptt acts with --objective stream only"),
    (["train", "--objective", "stream", "--window", "9"], "--window acts with --objective window only"),
    (["train", "--objective", "stream", "--tied", "--embedding", "8"], "--tied needs --embedding equal to --hidden"),
    (["train", "--objective", "stream", "--valid-corpus", "corpus/**/*.txt", "--valid-fraction", "0.2"],
     "--valid-fraction and --valid-corpus"),
    (["train", "--objective", "stream", "--arch", "attention"], "--arch attention reads windows"),
    # --softmax adaptive (#17.1): where it applies, and cutoffs that cut the vocabulary in order
    (["train", "--softmax", "adaptive", "--arch", "attention"],
     "--softmax adaptive acts with --objective stream, or window with --arch rnn, lstm or gru"),
    (["train", "--softmax", "adaptive", "--objective", "dialogue", "--arch", "hred"], "--softmax adaptive acts with"),
    (["train", "--objective", "stream", "--cutoffs", "5,10"], "--cutoffs acts with --softmax adaptive only"),
    (["train", "--objective", "stream", "--softmax", "adaptive", "--tied", "--embedding", "8", "--hidden", "8"],
     "--softmax adaptive and --tied do not go together"),
    (["train", "--objective", "stream", "--softmax", "adaptive", "--cutoffs", "10,5"],
     "--cutoffs must be positive integers in increasing order, got 10,5"),
    (["train", "--objective", "stream", "--softmax", "adaptive", "--cutoffs", "5,5"], "in increasing order"),
    (["train", "--objective", "stream", "--softmax", "adaptive", "--cutoffs", "0,5"], "positive integers"),
    (["train", "--objective", "stream", "--softmax", "adaptive", "--cutoffs", "5,x"],
     "argument --cutoffs: invalid cutoff_list value: '5,x'"),
    (["train", "--arch", "rnn", "--cell", "lstm"], "--cell acts with --arch attention or seq2seq only"),
    (["train", "--arch", "lstm", "--score", "dot"], "--score acts with --arch attention or seq2seq only"),
    (["train", "--arch", "attention", "--target-len", "2"], "--target-len acts with --arch seq2seq only"),
    (["train", "--arch", "attention", "--layers", "2"], "--layers acts with --arch rnn, lstm or gru only"),
    (["train", "--arch", "seq2seq", "--dropout", "0.1"], "--dropout is not used by --arch seq2seq"),
    (["train", "--arch", "seq2seq", "--cell", "lstm", "--peephole"], "--peephole needs --arch lstm"),
    (["train", "--arch", "gru", "--peephole"], "--peephole needs --arch lstm"),
    (["generate", "x", "--beam", "5", "--top-k", "3"], "--beam does not sample: --top-k would be ignored"),
    (["generate", "x", "--beam", "5", "--temperature", "5"], "--beam does not sample: --temperature"),
    (["generate", "x", "--beam", "5", "--top-p", "0.1"], "--beam does not sample: --top-p"),
    (["generate", "x", "--beam", "5", "--seed", "1"], "--beam does not sample: --seed"),
    (["generate", "x", "--beam", "2", "--greedy"], "--beam and --greedy do not go together"),
    (["generate", "x", "--greedy", "--temperature", "3"], "--greedy does not sample: --temperature"),
    (["generate", "x", "--temperature", "0", "--top-k", "3"], "--temperature 0 does not sample: --top-k"),
    (["generate", "x", "--beam", "0"], "--beam must be a positive integer, got 0"),
    (["generate", "x", "--top-p", "0"], "--top-p must be in (0, 1]"),
    (["generate", "x", "--temperature", "-1"], "--temperature must be 0 (greedy) or more"),
    (["generate", "x", "--top-k", "-1"], "--top-k must be 0 (all) or more"),
    (["generate", "x", "--words", "0"], "--words must be a positive integer, got 0"),
    (["predict", "x", "--attention-png", "a.png"], "--attention-png acts with --show-attention only"),
    (["predict", "x", "--top-k", "0"], "--top-k must be a positive integer, got 0"),
    # serve's limits (#13.3): the rule of Limits.validate, the one a script calling serve.run gets
    (["serve", "--max-body", "0"], "--max-body must be a positive integer, got 0"),
    (["serve", "--max-connections", "-1"], "--max-connections must be a positive integer, got -1"),
    (["serve", "--deadline", "0"], "--deadline must be positive, got 0.0"),
    (["serve", "--name", "a/b"], "--name must not contain '/'"),
    # argparse's own errors name the command too (#13.3: one format)
    (["generate", "x", "--bogus"], "unrecognized arguments: --bogus"),
    (["serve", "--port", "70000"], "argument --port: must be in 0..65535"),
]


@pytest.mark.parametrize("argv, fragment", REFUSED, ids=[" ".join(a) for a, _ in REFUSED])
def test_a_bad_or_ignored_flag_is_refused_in_one_line(argv, fragment, capsys):
    code, _, err = main_in_process(*argv, capsys=capsys)
    assert_one_line_error(code, err, argv[0], fragment)


def test_clip_norm_is_blamed_alone(capsys):
    _, _, err = main_in_process("train", "--clip-norm", "-1", capsys=capsys)
    assert "--save-every" not in err


def test_every_option_shows_its_default():
    """--help names the default of every option that takes a value (#12.19)."""
    parser = make_parser()
    [sub] = [a for a in parser._actions if a.choices and "train" in a.choices]
    missing = [f"{name} {action.option_strings[0]}"
               for name, command in sub.choices.items() for action in command._actions
               if action.option_strings and action.nargs != 0 and not action.required
               and "default" not in (action.help or "")]
    assert missing == []
    for command in sub.choices.values():
        command.format_help()  # every %(default)s renders


def test_help_says_which_flags_act_for_one_objective_and_their_limits():
    [sub] = [a for a in make_parser()._actions if a.choices and "train" in a.choices]
    helps = {a.dest: a.help for a in sub.choices["train"]._actions}
    for name in ("tied", "bptt"):
        assert "--objective stream only" in helps[name]
    assert "--objective window only" in helps["window"]
    assert "(default: 1; 4 with stream)" in helps["lr_decay"]
    assert "(default: 0.005; 0.001 with dialogue)" in helps["learning_rate"]
    assert "(default: 0; 1 with dialogue)" in helps["clip_norm"]
    assert "(default: 128; 8 with dialogue)" in helps["batch_size"]
    predict = {a.dest: a.help for a in sub.choices["predict"]._actions}
    assert "at most the model's exported top-k" in predict["top_k"]


def test_the_default_rate_decay_and_clipping_depend_on_the_objective():
    """#12.4: window runs keep the notes' constant Adam rate unless --lr-decay is given; dialogue
    models train as the HRED/VHRED papers' code, at a smaller rate with the gradient clipped."""
    assert (TrainConfig().learning_rate, TrainConfig().clip_norm, TrainConfig().lr_decay) == (0.005, 0.0, 1.0)
    assert TrainConfig(objective="stream").lr_decay == 4.0
    dialogue = TrainConfig(objective="dialogue", arch="hred", cell="gru")
    assert (dialogue.learning_rate, dialogue.clip_norm, dialogue.lr_decay) == (0.001, 1.0, 1.0)
    assert (TrainConfig().batch_size, dialogue.batch_size) == (128, 8)
    assert not {"learning_rate", "clip_norm", "lr_decay", "batch_size"} & dialogue.changed()  # not "typed"
    typed = TrainConfig(objective="dialogue", learning_rate=0.01, clip_norm=0.0, lr_decay=2.0, batch_size=64)
    assert (typed.learning_rate, typed.clip_norm, typed.lr_decay, typed.batch_size) == (0.01, 0.0, 2.0, 64)


def test_a_window_run_keeps_its_rate_unless_told_to_decay(tmp_path):
    """Adam at a rate too high to improve every epoch: only an explicit --lr-decay lowers it."""
    from lm_app.corpus import build_vocabulary
    from lm_app.train import train

    glob = str(cycle_corpus(tmp_path / "c", repeats=20) / "*.txt")
    build_vocabulary(glob, min_count=0).save(tmp_path / "vocab.txt")
    rates = {}
    for name, extra in (("default", {}), ("decay", {"lr_decay": 2.0})):
        cfg = TrainConfig(corpus=glob, vocab=str(tmp_path / "vocab.txt"), model_dir=str(tmp_path / name),
                          embedding=4, hidden=8, batch_size=16, epochs=6, patience=6, learning_rate=0.8,
                          seed=3, **extra)
        train(cfg, verbose=0, log=lambda *a: None)
        history = json.loads((tmp_path / name / "history.json").read_text())
        losses = history["val_loss"]
        # Epochs no better than the best before them, the last excepted: its decay is not logged.
        stalled = sum(losses[i] >= min(losses[:i]) for i in range(1, len(losses) - 1))
        assert stalled >= 1, losses  # the rate had a reason to decay
        rates[name] = history["learning_rate"]
        assert json.loads((tmp_path / name / "config.json").read_text())["lr_decay"] == cfg.lr_decay
    assert rates["default"] == [pytest.approx(0.8)] * 6
    assert math.isclose(min(rates["decay"]), 0.8 / 2 ** stalled, rel_tol=1e-5)


def test_a_script_gets_the_same_checks_as_the_command_line():
    """train() validates too, with the CLI's wording: argparse's choices are not the only guard."""
    from lm_app.errors import UsageError

    with pytest.raises(UsageError, match="--arch must be one of rnn, lstm, gru, attention, seq2seq, hred, vhred, got 'foo'"):
        TrainConfig(arch="foo").validate()
    with pytest.raises(UsageError, match="--tied acts with --objective stream only"):
        TrainConfig(tied=True, embedding=8, hidden=8).validate()
    TrainConfig(objective="stream", tied=True, embedding=8, hidden=8).validate()


def test_the_other_commands_library_functions_get_their_checks_too(tmp_path):
    """#13.3: serve.run and predict.predict refuse what their commands refuse, with the same words."""
    from lm_app import predict, serve
    from lm_app.errors import UsageError

    with pytest.raises(UsageError, match="--max-queue must be a positive integer, got 0"):
        serve.run(tmp_path, port=0, limits=serve.Limits(max_queue=0))
    with pytest.raises(UsageError, match="--top-k must be a positive integer, got 0"):
        predict.predict(None, ["the cat"], top_k=0)


def test_each_settings_rule_is_worded_in_config_only():
    """#13.3: a rule on a train, generate or predict flag ("--hidden must ...") is written once, in config.py.

    Library functions past validate() keep assertions, not a second wording that could disagree.
    """
    import dataclasses
    import re

    from lm_app.config import GenerateConfig, PredictConfig
    from tests.conftest import ROOT

    flags = {"--" + f.name.replace("_", "-") for cls in (TrainConfig, GenerateConfig, PredictConfig)
             for f in dataclasses.fields(cls)}
    elsewhere = [f"{path.relative_to(ROOT)}: {m[0]}" for path in (ROOT / "lm_app").rglob("*.py")
                 if path.name != "config.py"
                 for m in re.finditer(r"(--[a-z-]+) (must|needs)\b", path.read_text()) if m[1] in flags]
    assert elsewhere == []


def test_tied_needs_equal_embedding_and_hidden(tmp_path):
    from tests.conftest import assert_usage_error, run_cli_in_process, tiny_corpus

    glob, vocab = tiny_corpus(tmp_path)
    proc = run_cli_in_process("train", "--corpus", glob, "--vocab", vocab, "--model-dir", tmp_path / "lm",
                   "--objective", "stream", "--tied", "--embedding", 16, "--hidden", 32)
    assert_usage_error(proc, "--tied needs --embedding equal to --hidden")


def test_cutoffs_must_be_below_the_vocabulary_size_and_survive_config_json(tmp_path, capsys):
    """#17.1: the size is read beside the vocabulary, before TensorFlow loads; config.json keeps the cutoffs."""
    from lm_app import corpus

    glob = str(cycle_corpus(tmp_path / "corpus", repeats=5) / "*.txt")
    vocab = corpus.build_vocabulary(glob, min_count=0)
    vocab.save(tmp_path / "vocab.txt")
    code, _, err = main_in_process("train", "--corpus", glob, "--vocab", tmp_path / "vocab.txt", "--objective",
                                   "stream", "--softmax", "adaptive", "--cutoffs", f"4,{len(vocab)}", capsys=capsys)
    assert_one_line_error(code, err, "train", f"--cutoffs must be below the vocabulary's size ({len(vocab)} entries")
    cfg = TrainConfig(corpus=glob, vocab=str(tmp_path / "vocab.txt"), objective="stream", softmax="adaptive",
                      cutoffs=(4, len(vocab) - 1))
    cfg.validate()
    again = TrainConfig.from_dict(json.loads(json.dumps(dataclasses.asdict(cfg))))
    assert again == cfg and again.changed() == {"corpus", "vocab", "softmax", "cutoffs"}

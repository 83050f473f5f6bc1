"""``train --objective dialogue``'s flags: bad values and pairs that cannot act are refused in one line, exit 2."""
import pytest

from lm_app.config import TrainConfig
from lm_app.errors import UsageError
from tests.conftest import assert_one_line_error, main_in_process


@pytest.mark.parametrize("flags,fragment", [
    (["--objective", "dialogue", "--arch", "hred", "--context-turns", "0"],
     "--context-turns must be a positive integer"),
    (["--objective", "dialogue", "--arch", "hred", "--max-turn-words", "0"], "--max-turn-words must be a positive"),
    (["--objective", "dialogue", "--arch", "vhred", "--word-drop", "1"], "--word-drop must be in [0, 1)"),
    (["--objective", "dialogue", "--arch", "vhred", "--kl-anneal-steps", "-1"], "--kl-anneal-steps must be 0"),
    (["--objective", "dialogue", "--arch", "vhred", "--kl-free-nats", "-1"], "--kl-free-nats must be 0"),
    (["--objective", "dialogue", "--arch", "vhred", "--bow-loss", "-0.5"], "--bow-loss must be 0 (off) or more"),
    (["--objective", "dialogue", "--arch", "hred", "--bow-loss", "2"], "--bow-loss acts with --arch vhred only"),
    (["--objective", "dialogue", "--arch", "hred", "--kl-free-nats", "1"], "--kl-free-nats acts with --arch vhred only"),
    (["--objective", "dialogue", "--arch", "vhred", "--posterior-reads", "bag"],
     "--posterior-reads must be one of mean, rnn, got 'bag'"),
    (["--objective", "dialogue", "--arch", "hred", "--posterior-reads", "rnn"], "--posterior-reads acts with --arch vhred"),
    (["--objective", "dialogue"], "--objective dialogue needs --arch hred, vhred, seq2seq, got rnn"),
    (["--objective", "dialogue", "--arch", "attention"], "needs --arch hred, vhred, seq2seq"),
    (["--arch", "hred"], "--arch hred reads dialogues: use --objective dialogue"),
    (["--objective", "stream", "--arch", "vhred"], "--arch vhred reads dialogues"),
    (["--context-turns", "3"], "--context-turns acts with --objective dialogue only"),
    (["--objective", "dialogue", "--arch", "hred", "--word-drop", "0.5"], "--word-drop acts with --arch vhred only"),
    (["--objective", "dialogue", "--arch", "seq2seq", "--kl-anneal-steps", "9"], "acts with --arch vhred only"),
    (["--objective", "dialogue", "--arch", "seq2seq", "--target-len", "4"],
     "--target-len does not act with --objective dialogue"),
    (["--objective", "dialogue", "--arch", "hred", "--window", "4"], "--window does not act"),
    (["--objective", "dialogue", "--arch", "hred", "--layers", "2"], "--layers does not act"),
])
def test_bad_dialogue_flags_are_one_line_and_exit_2(flags, fragment, capsys, tmp_path):
    code, _, err = main_in_process("train", "--corpus", tmp_path / "none.txt", *flags, capsys=capsys)
    assert_one_line_error(code, err, "train", fragment)


def test_the_dialogue_settings_that_act_pass():
    for arch, extra in [("hred", {"cell": "lstm", "context_turns": 3}),
                        ("vhred", {"word_drop": 0.5, "kl_anneal_steps": 0, "bow_loss": 2.0,
                                   "posterior_reads": "rnn"}),
                        ("seq2seq", {"max_turn_words": 10})]:
        TrainConfig(objective="dialogue", arch=arch, **extra).validate()
    with pytest.raises(UsageError, match="--score does not act"):
        TrainConfig(objective="dialogue", arch="hred", score="dot").validate()


def test_a_vhred_saved_before_posterior_reads_existed_is_rebuilt_with_the_rnn_it_had():
    """Its weights are those of the utterance-RNN posterior: evaluate and --resume must rebuild that one."""
    old = {"objective": "dialogue", "arch": "vhred", "corpus": "c", "vocab": "v"}
    assert TrainConfig.from_dict(old).posterior_reads == "rnn"
    assert TrainConfig.from_dict({**old, "posterior_reads": "mean"}).posterior_reads == "mean"
    assert TrainConfig.from_dict({**old, "arch": "hred"}).posterior_reads == "mean"  # the default, unused

"""Bad input: one line on stderr, exit code 2, no traceback, nothing half-written."""
import os
import re
import subprocess
import sys

import pytest

from lm_app.cli import make_parser
from tests.conftest import (ROOT, assert_one_line_error, assert_usage_error, cycle_corpus, main_in_process,
                            run_cli, run_cli_in_process, tiny_corpus)


def test_help_lists_the_commands():
    proc = run_cli("--help")
    assert proc.returncode == 0
    for command in ("build-dict", "train", "predict"):
        assert command in proc.stdout
    train_help = run_cli("train", "--help").stdout
    assert "--window" in train_help and "default: 5" in train_help


@pytest.mark.parametrize("files, message", [
    ({}, "no files match"),
    ({"empty.txt": b""}, "has no words"),
    ({"latin1.txt": b"caf\xe9\n"}, "latin1.txt is not valid utf-8"),
    ({"rare.txt": b"just a few words\n"}, "all would be <unk>"),
])
def test_build_dict_refuses_bad_corpora(tmp_path, files, message):
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
    vocab = tmp_path / "out" / "vocab.txt"
    assert_usage_error(run_cli("build-dict", "--corpus", tmp_path / "*.txt", "--vocab", vocab), message)
    assert not vocab.exists()


def test_build_dict_refuses_a_directory_as_vocab_path(tmp_path):
    cycle_corpus(tmp_path / "c")
    (tmp_path / "vocab.txt").mkdir()
    proc = run_cli("build-dict", "--corpus", tmp_path / "c" / "*.txt", "--vocab", tmp_path / "vocab.txt")
    assert_usage_error(proc, "cannot write")


def test_train_needs_a_vocabulary(tmp_path):
    cycle_corpus(tmp_path / "c")
    proc = run_cli_in_process("train", "--corpus", tmp_path / "c" / "*.txt", "--vocab", tmp_path / "missing.txt",
                   "--model-dir", tmp_path / "lm")
    assert_usage_error(proc, "not found")


def test_train_refuses_a_vocabulary_that_does_not_match_its_settings(tmp_path):
    cycle_corpus(tmp_path / "c")
    glob, vocab = tmp_path / "c" / "*.txt", tmp_path / "vocab.txt"
    assert run_cli("build-dict", "--corpus", glob, "--vocab", vocab).returncode == 0
    vocab.write_text(vocab.read_text().replace("cat", "cow"))
    proc = run_cli_in_process("train", "--corpus", glob, "--vocab", vocab, "--model-dir", tmp_path / "lm")
    assert_usage_error(proc, "does not match")
    assert not (tmp_path / "lm" / "saved_model.pb").exists()


def test_train_refuses_a_corpus_shorter_than_a_window(tmp_path):
    cycle_corpus(tmp_path / "c", repeats=4)
    glob, vocab = tmp_path / "c" / "*.txt", tmp_path / "vocab.txt"
    assert run_cli("build-dict", "--corpus", glob, "--vocab", vocab, "--min-count", 0).returncode == 0
    proc = run_cli_in_process("train", "--corpus", glob, "--vocab", vocab, "--model-dir", tmp_path / "lm",
                   "--window", 200)
    assert_usage_error(proc, "too small for windows of 200 words")


def test_train_with_no_matching_files(tmp_path):
    # Reported first, whether or not a vocabulary exists (a clean clone has none).
    for vocab in (tmp_path / "missing.txt", tiny_corpus(tmp_path / "v")[1]):
        proc = run_cli_in_process("train", "--corpus", tmp_path / "nothing" / "*.txt", "--vocab", vocab,
                       "--model-dir", tmp_path / "lm")
        assert_usage_error(proc, "no files match")


def test_train_has_no_bidirectional_flag(capsys):
    """#13.2: it only existed to be refused; the bidirectional layer stays for encoders."""
    code, _, err = main_in_process("train", "--bidirectional", capsys=capsys)
    assert_one_line_error(code, err, "train", "unrecognized arguments: --bidirectional")


def test_train_help_groups_its_flags_by_what_they_affect():
    """#13.2: data, model, optimisation, run control, distribution; every flag in one of them."""
    [sub] = [a for a in make_parser()._actions if a.choices and "train" in a.choices]
    train = sub.choices["train"]
    groups = {g.title: {a.dest for a in g._group_actions} for g in train._action_groups}
    assert {"data", "model", "optimisation", "run control", "distribution"} <= set(groups)
    assert {"corpus", "valid_fraction"} <= groups["data"] and "arch" in groups["model"]
    assert "learning_rate" in groups["optimisation"] and "resume" in groups["run control"]
    assert groups["distribution"] == {"strategy"}
    flags = {a.dest for a in train._actions if a.option_strings and a.dest != "help"}
    assert flags <= set().union(*(groups[t] for t in ("data", "model", "optimisation", "run control",
                                                      "distribution")))
    assert "data:" in train.format_help()
    # the groups keep --resume's rule: a setting not typed is absent, so the run's own value stands
    typed = vars(make_parser().parse_args(["train", "--hidden", "8", "--strategy", "mirrored"]))
    assert set(typed) == {"command", "func", "resume", "fresh", "force", "hidden", "strategy"}


def test_the_cli_loads_no_command_module_until_a_command_runs():
    """#13.2: cli.py declares every flag; serve and tflite load only when their command runs."""
    code = ("import sys; from lm_app import cli; "
            "print(sorted(m for m in ('lm_app.serve', 'lm_app.tflite') if m in sys.modules)); "
            "cli.make_parser().parse_args(['serve']); "
            "print(sorted(m for m in ('lm_app.train', 'lm_app.predict', 'tensorflow', 'aiohttp') "
            "if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["[]", "[]"]


def test_no_library_module_imports_the_cli():
    """#13.2: cli sits on top; only __main__ imports it."""
    importers = [str(path.relative_to(ROOT)) for path in (ROOT / "lm_app").rglob("*.py")
                 if path.name != "__main__.py"
                 and re.search(r"^\s*(from\s+(\.+|lm_app\.)cli\s+import|import\s+lm_app\.cli|from\s+\.+\s+import\s+.*\bcli\b)",
                               path.read_text(), re.M)]
    assert importers == []


def test_peephole_needs_an_lstm(tmp_path):
    cycle_corpus(tmp_path / "c")
    glob, vocab = tmp_path / "c" / "*.txt", tmp_path / "vocab.txt"
    assert run_cli("build-dict", "--corpus", glob, "--vocab", vocab).returncode == 0
    proc = run_cli_in_process("train", "--corpus", glob, "--vocab", vocab, "--model-dir", tmp_path / "lm",
                   "--arch", "gru", "--peephole")
    assert_usage_error(proc, "--peephole needs --arch lstm")


@pytest.mark.parametrize("command", ["build-dict", "train"])
def test_a_missing_corpus_file_is_named_as_missing(tmp_path, command, capsys):
    """#12.18: not "matches only directories"."""
    missing = tmp_path / "nothere.txt"
    code, _, err = main_in_process(command, "--corpus", missing, "--vocab", tmp_path / "v.txt",
                                   *(["--model-dir", tmp_path / "lm"] if command == "train" else []),
                                   capsys=capsys)
    assert_one_line_error(code, err, command, f"{str(missing)!r} does not exist")


PTB_STYLE = "the cat sat on the mat , and the dog ran to the park .\nthe bird sang over the house .\n"
PLAIN = "The cat sat on the mat, and the dog ran to the park.\nThe bird sang over the house.\n"


@pytest.fixture(scope="module")
def two_models(tmp_path_factory):
    """One model trained on a --pretokenized vocabulary, one on a plain one: ``(work, {mode: model dir})``."""
    from lm_app.config import TrainConfig
    from lm_app.corpus import build_vocabulary
    from lm_app.train import train

    work = tmp_path_factory.mktemp("modes")
    (work / "ptb.txt").write_text(PTB_STYLE * 40, encoding="utf-8")
    (work / "plain.txt").write_text(PLAIN * 40, encoding="utf-8")
    models = {}
    for mode, corpus in (("pretokenized", "ptb.txt"), ("words", "plain.txt")):
        build_vocabulary(str(work / corpus), min_count=0, mode=mode).save(work / f"{mode}.vocab.txt")
        models[mode] = work / mode
        train(TrainConfig(corpus=str(work / corpus), vocab=str(work / f"{mode}.vocab.txt"),
                          model_dir=str(models[mode]), embedding=4, hidden=4, epochs=1, batch_size=16),
              verbose=0, log=lambda *a: None)
    return work, models


@pytest.mark.parametrize("mode, flags, fragment", [
    ("words", ["--pretokenized"], "drop --pretokenized"),
    ("pretokenized", [], "add --pretokenized"),
], ids=["plain-model", "ptb-model"])
def test_evaluate_pretokenized_must_agree_with_the_model(two_models, capsys, mode, flags, fragment):
    """#12.18: the mode comes from the model; the flag agrees with it or is refused, both ways."""
    work, models = two_models
    code, _, err = main_in_process("evaluate", "--model-dir", models[mode], "--corpus", work / "ptb.txt",
                                   *flags, capsys=capsys)
    assert_one_line_error(code, err, "evaluate", fragment)
    ok, out, _ = main_in_process("evaluate", "--model-dir", models["pretokenized"], "--corpus",
                                 work / "ptb.txt", "--pretokenized", "--json", capsys=capsys)
    assert ok == 0 and "perplexity" in out


@pytest.mark.parametrize("vocab_mode, text, warning", [
    ("pretokenized", PLAIN, "looks like plain text"),
    ("words", PTB_STYLE.replace("mat", "<unk>"), "holds <unk>/<eos> tokens"),
], ids=["plain-corpus", "ptb-corpus"])
def test_train_warns_when_the_corpus_is_not_tokenized_as_its_vocabulary(two_models, capsys, tmp_path,
                                                                          vocab_mode, text, warning):
    """#12.18: a plain corpus under a --pretokenized vocabulary, or the reverse, is said, not trained on silently."""
    work, _ = two_models
    (tmp_path / "other.txt").write_text(text * 40, encoding="utf-8")
    code, _, err = main_in_process("train", "--corpus", tmp_path / "other.txt", "--vocab",
                                   work / f"{vocab_mode}.vocab.txt", "--model-dir", tmp_path / "lm",
                                   "--embedding", 4, "--hidden", 4, "--epochs", 1, "--batch-size", 16,
                                   capsys=capsys)
    assert code == 0
    assert err.startswith("lm_app train: warning: ") and warning in err and len(err.strip().splitlines()) == 1, err

"""The word2vec command as a user runs it: bad input in one line (exit 2), Ctrl-C (exit 130), --resume."""
import os
import signal
import subprocess
import sys
import time

import pytest

from lm_app.word2vec.train import state_dir

from tests import forks
from tests.conftest import ROOT, assert_one_line_error, assert_usage_error, main_in_process, run_cli_in_process
from tests.test_word2vec import planted_corpus


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    return planted_corpus(tmp_path_factory.mktemp("planted"))


@pytest.mark.parametrize("flags,fragment", [
    (["--dim", "0"], "--dim must be a positive integer, got 0"),
    (["--window", "0"], "--window must be a positive integer, got 0"),
    (["--negative", "-1"], "--negative must be 1 or more"),
    (["--sample", "1.5"], "--sample must be in [0, 1)"),
    (["--min-learning-rate", "0.5"], "--min-learning-rate must be in [0, --learning-rate]"),
    (["--resume", "--fresh"], "give one"),
])
def test_bad_flags_are_one_line(planted, tmp_path, capsys, flags, fragment):
    glob, vocab = planted
    code, _, err = main_in_process("word2vec", "--corpus", glob, "--vocab", vocab, "--out", tmp_path / "w2v",
                                   *flags, capsys=capsys)
    assert_one_line_error(code, err, "word2vec", fragment)


def test_missing_vocabulary_or_corpus(planted, tmp_path, capsys):
    glob, vocab = planted
    code, _, err = main_in_process("word2vec", "--corpus", glob, "--vocab", tmp_path / "none.txt",
                                   "--out", tmp_path / "a", capsys=capsys)
    assert_one_line_error(code, err, "word2vec", "vocabulary not found")
    code, _, err = main_in_process("word2vec", "--corpus", tmp_path / "none.txt", "--vocab", vocab,
                                   "--out", tmp_path / "a", capsys=capsys)
    assert_one_line_error(code, err, "word2vec", "does not exist")


def test_a_corpus_without_a_word_of_the_vocabulary(planted, tmp_path):
    glob, vocab = planted
    (tmp_path / "empty.txt").write_text("12 ... !!\nzebra\n")  # no word of the vocabulary
    assert_usage_error(run_cli_in_process("word2vec", "--corpus", tmp_path / "empty.txt", "--vocab", vocab,
                               "--out", tmp_path / "b"), "no word of the vocabulary")


def test_ctrl_c_saves_then_resume_finishes(planted, tmp_path):
    glob, vocab = planted
    out = tmp_path / "w2v"
    flags = ["--corpus", glob, "--vocab", vocab, "--out", out, "--dim", "8", "--sample", "0"]
    env_cmd = [sys.executable, "-m", "lm_app", "word2vec", *map(str, flags), "--epochs", "200",
               "--batch-words", "1000", "--save-every", "1"]
    proc = forks.Popen(env_cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"})
    try:
        while not (state_dir(out) / "checkpoints" / "checkpoint").exists() and proc.poll() is None:
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == "lm_app word2vec: interrupted"
    resumed = run_cli_in_process("word2vec", *flags, "--resume", "--epochs", "3")  # fewer epochs: ends at once
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stdout and (out / "vectors.txt").read_text().startswith("12 8\n")

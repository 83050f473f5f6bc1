"""Nothing half-written, nothing that hangs, nothing that runs code from a file."""
import collections
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lm_app import atomic, corpus, text
from lm_app.config import TrainConfig
from lm_app.errors import UsageError
from tests import forks
from tests.conftest import ROOT, assert_usage_error, cycle_corpus, run_cli, run_cli_in_process


def vocab_of(words, meta=None):
    return corpus.Vocabulary.from_counts(collections.Counter(words), 0, meta or {"mode": "words"})


def test_a_vocabulary_save_killed_at_any_rename_leaves_a_valid_pair(tmp_path, monkeypatch):
    """Die at each rename in turn: load then gives the old vocabulary or the new one, whole."""
    path = tmp_path / "vocab.txt"
    old, new = vocab_of("a a b".split()), vocab_of("x y y z z z".split())
    real_replace = os.replace
    for crash_at in range(3):
        old.save(path)
        calls = []

        def dying_replace(src, dst):
            calls.append(dst)
            if len(calls) > crash_at:
                raise KeyboardInterrupt  # the process dies here; nothing after runs
            real_replace(src, dst)

        monkeypatch.setattr(os, "replace", dying_replace)
        with pytest.raises(KeyboardInterrupt):
            new.save(path)
        monkeypatch.setattr(os, "replace", real_replace)
        loaded = corpus.Vocabulary.load(path)
        assert loaded.tokens in (old.tokens, new.tokens), crash_at
        assert corpus.Vocabulary.load(path).tokens == loaded.tokens  # stable once recovered
    assert loaded.tokens == new.tokens  # the commit point had passed in the last round


def test_a_folder_swap_interrupted_between_its_renames_is_undone(tmp_path):
    target = tmp_path / "lm"
    target.mkdir()
    (target / "saved_model.pb").write_text("old")
    os.replace(target, tmp_path / "lm.old")  # what a kill between the two renames leaves
    atomic.recover(target)
    assert (target / "saved_model.pb").read_text() == "old"


def test_a_failed_folder_write_keeps_the_old_folder(tmp_path):
    target = tmp_path / "lm"
    target.mkdir()
    (target / "saved_model.pb").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic.atomic_path(target, directory=True) as tmp:
            (tmp / "saved_model.pb").write_text("half")
            raise RuntimeError("disk on fire")
    assert (target / "saved_model.pb").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lm"]


def test_a_disk_that_fills_up_during_build_dict(tmp_path):
    words = [f"{a}{b}{c}" for a in "abcdefghij" for b in "abcdefghij" for c in "abcdefghij"]
    (tmp_path / "big.txt").write_text(" ".join(words * 5), encoding="utf-8")
    vocab = tmp_path / "vocab.txt"
    small = tmp_path / "small"
    cycle_corpus(small)
    assert run_cli("build-dict", "--corpus", small / "*.txt", "--vocab", vocab).returncode == 0
    before = vocab.read_bytes()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = forks.run([sys.executable, "-m", "lm_app", "build-dict", "--corpus",
                           str(tmp_path / "big.txt"), "--vocab", str(vocab)],
                          capture_output=True, text=True, env=env, cwd=ROOT,
                          preexec_fn=forks.limit_file_size(4096))
    assert_usage_error(proc, "cannot write")
    assert vocab.read_bytes() == before
    assert all("small" in f for f in corpus.Vocabulary.load(vocab).meta["files"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.txt", "small", "vocab.json", "vocab.txt"]


@pytest.mark.parametrize("command", ["build-dict", "train"])
def test_unwritable_outputs_are_one_line_errors(tmp_path, command):
    cycle_corpus(tmp_path / "c")
    glob, vocab = tmp_path / "c" / "*.txt", tmp_path / "vocab.txt"
    (tmp_path / "a-file").write_text("not a folder")
    if command == "build-dict":
        proc = run_cli("build-dict", "--corpus", glob, "--vocab", tmp_path / "a-file" / "vocab.txt")
    else:
        assert run_cli("build-dict", "--corpus", glob, "--vocab", vocab).returncode == 0
        proc = run_cli_in_process("train", "--corpus", glob, "--vocab", vocab, "--model-dir",
                                  tmp_path / "a-file" / "lm")
    assert_usage_error(proc, "cannot write")


def test_directories_where_files_are_expected(tmp_path):
    (tmp_path / "vocab.txt").mkdir()
    (tmp_path / "vocab.json").write_text("{}")
    with pytest.raises(UsageError, match="is a directory"):
        corpus.Vocabulary.load(tmp_path / "vocab.txt")
    (tmp_path / "model").write_text("a file")
    assert_usage_error(run_cli_in_process("predict", "--model-dir", tmp_path / "model", "hello"), "no trained model")


@pytest.mark.parametrize("damage, message", [
    (lambda d: (d / "vocab.json").write_text("{not json"), "not valid JSON"),
    (lambda d: (d / "vocab.json").unlink(), "not found"),
    (lambda d: (d / "vocab.txt").write_bytes(b"\xff\xfe"), "does not match"),
])
def test_a_broken_vocabulary_is_refused(tmp_path, damage, message):
    vocab_of("a b c".split()).save(tmp_path / "vocab.txt")
    damage(tmp_path)
    with pytest.raises(UsageError, match=message):
        corpus.Vocabulary.load(tmp_path / "vocab.txt")


def test_a_consistently_forged_vocabulary_is_still_validated(tmp_path):
    """Even with a matching hash, lines must be token<TAB>count and start with the reserved ids."""
    import hashlib
    import json
    body = "hello\t3\n<pad>\t0\n"
    (tmp_path / "vocab.txt").write_text(body)
    (tmp_path / "vocab.json").write_text(json.dumps(
        {"mode": "words", "sha256": hashlib.sha256(body.encode()).hexdigest()}))
    with pytest.raises(UsageError, match="must start with <pad>, <unk>"):
        corpus.Vocabulary.load(tmp_path / "vocab.txt")


def test_symlink_loops_do_not_hang_the_corpus_walk(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "x.txt").write_text("hello there")
    os.symlink(tmp_path / "a", tmp_path / "a" / "b" / "loop")
    os.symlink(".", tmp_path / "a" / "self")
    files = corpus.find_files(str(tmp_path / "**" / "*.txt"))
    assert files == [str(tmp_path / "a" / "b" / "x.txt")]


def test_default_paths_stay_inside_the_working_folder():
    defaults = TrainConfig()
    for path in (defaults.corpus, defaults.vocab, defaults.model_dir):
        assert not os.path.isabs(path) and ".." not in Path(path).parts


def test_no_pickle_eval_or_exec_in_the_package():
    forbidden = ("import pickle", "pickle.load", "eval(", "exec(", "yaml.load", "allow_pickle=True")
    for source in (ROOT / "lm_app").rglob("*.py"):
        body = source.read_text(encoding="utf-8")
        for word in forbidden:
            assert word not in body, f"{word} in {source}"


@settings(max_examples=40, deadline=None)
@given(st.lists(st.text(alphabet=st.characters(blacklist_characters="\n", blacklist_categories=("Cs",)), max_size=30), max_size=6))
def test_pretokenized_python_and_tensorflow_agree_on_any_unicode(lines):
    import tensorflow as tf
    ours = text.tf_tokenize(tf.constant(lines, tf.string), "pretokenized").to_list() if lines else []
    assert [[t.decode("utf-8") for t in row] for row in ours] == \
        [text.tokenize(line + "\n", "pretokenized") for line in lines]


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=200))
def test_tokenize_never_crashes_and_is_idempotent(s):
    for mode in text.MODES:
        tokens = text.tokenize(s, mode)
        assert all(t and not any(c.isspace() and c in text.ASCII_WHITESPACE for c in t) for t in tokens)
    once = " ".join(text.tokenize(s))
    assert " ".join(text.tokenize(once)) == once


def test_a_disk_that_fills_up_during_training(tmp_path):
    cycle_corpus(tmp_path / "c")
    glob, vocab = tmp_path / "c" / "*.txt", tmp_path / "vocab.txt"
    assert run_cli("build-dict", "--corpus", glob, "--vocab", vocab).returncode == 0
    model_dir = tmp_path / "lm"
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    proc = forks.run([sys.executable, "-m", "lm_app", "train", "--corpus", str(glob), "--vocab",
                           str(vocab), "--model-dir", str(model_dir), "--epochs", "1",
                           "--embedding", "300", "--hidden", "400"],
                          capture_output=True, text=True, env=env, cwd=ROOT,
                          preexec_fn=forks.limit_file_size(200_000))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "cannot" in proc.stderr
    assert not (model_dir / "saved_model.pb").exists()
    leftovers = [p.name for p in model_dir.rglob("*") if p.name.startswith(".")]
    assert leftovers == []


PEAK_SCRIPT = """
import json, resource, sys

def status(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key + ":")) * 1024

{setup}
start = status("VmRSS")
{work}
children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
print(json.dumps({{"above_start": max(status("VmHWM"), children) - start, "result": result}}))
"""


def peak_above_start(setup, work):
    """Run ``work`` in a fresh process after ``setup``; its peak memory (and its workers') above the start."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, "-c", PEAK_SCRIPT.format(setup=setup, work=work)],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


# Below the one-line file's size: the line is read in pieces (1 MB at most), never held whole.
LIMIT = 90 << 20


@pytest.fixture(scope="module")
def one_line_file(tmp_path_factory):
    """100 MB of words and not one newline: more than a reader that kept the line whole may use (LIMIT)."""
    path = tmp_path_factory.mktemp("long") / "one-line.txt"
    block = ("the cat sat on the mat and the dog ran to the park " * 20_000).encode()
    with open(path, "wb") as f:
        for _ in range(100_000_000 // len(block) + 1):
            f.write(block)
    return path


def test_build_dict_memory_stays_flat_on_a_file_without_newlines(one_line_file, tmp_path):
    measured = peak_above_start(
        "from lm_app import cli",
        f"result = cli.main(['build-dict', '--corpus', {str(one_line_file)!r}, "
        f"'--vocab', {str(tmp_path / 'vocab.txt')!r}])")
    assert measured["result"] == 0
    assert corpus.Vocabulary.load(tmp_path / "vocab.txt").counts[2] > 4_000_000  # "the" x 4 per 13 words
    assert measured["above_start"] < LIMIT, measured


def test_the_training_pipeline_reads_a_file_without_newlines_in_flat_memory(one_line_file):
    measured = peak_above_start(
        "import tensorflow as tf\n"
        "from lm_app import corpus, data\n"
        "vocab = corpus.Vocabulary.from_counts({w: 9 for w in 'the cat sat on mat and dog ran to park'.split()},"
        " 3, {'mode': 'words'})\n"
        "table = data.lookup_table(vocab)\n"
        "def windows(path):\n"
        "    ds = data.file_windows(tf.constant(path), table, vocab, 5)\n"
        "    return int(ds.reduce(tf.constant(0, tf.int64), lambda n, w: n + tf.shape(w, out_type=tf.int64)[0]))\n"
        f"windows({str(ROOT / 'README.md')!r})  # TensorFlow warmed up before the start is measured",
        f"result = windows({str(one_line_file)!r})")
    words = one_line_file.stat().st_size // len("the cat sat on the mat and the dog ran to the park ") * 13
    assert measured["result"] == words - 5
    assert measured["above_start"] < LIMIT, measured

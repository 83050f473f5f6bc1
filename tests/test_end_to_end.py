"""The whole path as a user runs it: build-dict -> train -> SavedModel -> predict, in real processes.

The model is built and trained, and first predicted from, by real processes; the other predict
checks call the same command line in-process (run_cli_in_process), as a process adds nothing to them.
"""
import json
import sys
import textwrap

import pytest

from tests import forks
from tests.conftest import assert_usage_error, cycle_corpus, run_cli, run_cli_in_process

pytestmark = pytest.mark.slow

TRAIN_FLAGS = ["--embedding", 16, "--hidden", 48, "--batch-size", 32, "--learning-rate", 0.01,
               "--epochs", 4, "--patience", 4, "--seed", 7, "--top-k", 5]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny model trained once on a deterministic cycle, shared by the tests below."""
    work = tmp_path_factory.mktemp("e2e")
    corpus_dir = cycle_corpus(work / "corpus")
    glob = str(corpus_dir / "*.txt")
    vocab = work / "vocab.txt"
    built = run_cli("build-dict", "--corpus", glob, "--vocab", vocab)
    assert built.returncode == 0, built.stderr
    model_dir = work / "lm"
    trained = run_cli("train", "--corpus", glob, "--vocab", vocab, "--model-dir", model_dir, *TRAIN_FLAGS)
    assert trained.returncode == 0, trained.stderr
    return {"work": work, "glob": glob, "vocab": vocab, "model_dir": model_dir,
            "build_out": built.stdout, "train_out": trained.stdout}


def tensorboard_tags(folder):
    """The scalar names written to TensorBoard event files in ``folder``."""
    import tensorflow as tf

    tags = set()
    for events in folder.glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(events)):
            tags.update(value.tag for value in event.summary.value)
    return tags


def test_build_dict_prints_a_summary(trained):
    out = trained["build_out"]
    assert "read 2 file(s): 2,760 tokens" in out
    assert "vocabulary: 19 entries" in out
    assert "<unk>: 0 tokens (0.0%)" in out


def test_training_learns_the_pattern_and_writes_its_records(trained):
    model_dir = trained["model_dir"]
    metrics = json.loads((model_dir / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] >= 0.95, metrics
    assert metrics["test"]["top5"] >= metrics["test"]["accuracy"]
    assert metrics["test"]["perplexity"] < 1.5
    assert metrics["valid"]["accuracy"] >= 0.95, metrics
    assert "test accuracy" in trained["train_out"] and "validation accuracy" in trained["train_out"]
    history = json.loads((model_dir / "history.json").read_text())
    assert len(history["loss"]) == metrics["epochs"] and history["loss"][-1] < history["loss"][0]
    assert set(history) >= {"loss", "val_loss", "accuracy", "val_accuracy", "val_top5"}
    assert (model_dir / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (model_dir / "checkpoints" / "best.weights.h5").stat().st_size > 0
    for split, tags in (("train", {"loss", "accuracy", "perplexity", "learning_rate"}),
                        ("validation", {"loss", "accuracy", "perplexity"})):
        assert tags <= tensorboard_tags(model_dir / "logs" / split), split
    config = json.loads((model_dir / "config.json").read_text())
    assert config["window"] == 5 and config["vocab_size"] == 19 and config["arch"] == "rnn"


def test_predict_continues_the_pattern(trained):
    proc = run_cli("predict", "--model-dir", trained["model_dir"], "The dog ran to the")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Prediction: The dog ran to the park\n")
    proc = run_cli_in_process("predict", "--model-dir", trained["model_dir"], "--json", "--top-k", 3,
                              "the bird sang over the")
    result = json.loads(proc.stdout)
    assert result["prediction"] == "house"
    assert [item["word"] for item in result["top_k"]][0] == "house" and len(result["top_k"]) == 3
    probs = [item["prob"] for item in result["top_k"]]
    assert probs == sorted(probs, reverse=True) and 0.9 < probs[0] <= 1


def test_short_and_unknown_text_is_padded_not_refused(trained):
    proc = run_cli_in_process("predict", "--model-dir", trained["model_dir"], "--json", "Zebra!  on THE")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["context"] == ["<unk>", "on", "the"]
    assert result["prediction"] == "mat"


def test_saved_model_stands_alone_in_a_tensorflow_only_process(trained):
    """A plain tf.saved_model.load, with no lm_app and no tensorflow_text, serves raw text."""
    prompts = ["The dog ran to the", "the bird sang over the", "near the"]
    from lm_app import predict

    # The command for one prompt; the others through the library call it makes (a process each costs seconds).
    cli = json.loads(run_cli_in_process("predict", "--model-dir", trained["model_dir"], "--json",
                                        prompts[0]).stdout)
    expected = [r["prediction"] for r in predict.predict(predict.load(trained["model_dir"]), prompts)]
    assert cli["prediction"] == expected[0]
    script = textwrap.dedent(f"""
        import json, sys
        import tensorflow as tf
        serve = tf.saved_model.load({str(trained["model_dir"])!r}).signatures["serving_default"]
        out = serve(text=tf.constant({prompts!r}))
        assert out["words"].dtype == tf.string and out["probs"].dtype == tf.float32
        assert out["words"].shape == (3, 5) and out["probabilities"].shape == (3, 19)
        assert not [m for m in sys.modules if m.startswith(("lm_app", "tensorflow_text"))]
        print(json.dumps([w[0].decode() for w in out["words"].numpy()]))
    """)
    proc = forks.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=trained["work"], timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == expected


def test_saved_model_cli_reads_the_signature(trained):
    cli = [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli", "show",
           "--dir", str(trained["model_dir"]), "--tag_set", "serve", "--signature_def", "serving_default"]
    proc = forks.run(cli, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "inputs['text'] tensor_info" in proc.stdout and "DT_STRING" in proc.stdout
    assert "outputs['words']" in proc.stdout and "outputs['probs']" in proc.stdout


def test_predict_errors_are_one_line(trained, tmp_path):
    assert_usage_error(run_cli_in_process("predict", "--model-dir", tmp_path / "none", "hello"),
                       "no trained model")
    assert_usage_error(run_cli_in_process("predict", "--model-dir", trained["model_dir"], "   "), "empty")
    assert_usage_error(run_cli_in_process("predict", "--model-dir", trained["model_dir"], "--top-k", 9, "the"),
                       "--top-k is at most 5")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "saved_model.pb").write_bytes((trained["model_dir"] / "saved_model.pb").read_bytes()[:100])
    assert_usage_error(run_cli_in_process("predict", "--model-dir", broken, "hello"), "cannot load the model")


@pytest.mark.parametrize("prompt, context", [
    ("😀🎉 on the", ["on", "the"]),
    ("\x01\x02\x1b[31m on\x7f the", ["<unk>", "on", "the"]),  # "[31m" leaves an "m"
    ("zebra quux", ["<unk>", "<unk>"]),
    ("on the \udcff", ["on", "the"]),  # a byte that is not UTF-8, as argv delivers it
])
def test_hostile_text_is_harmless(trained, prompt, context):
    proc = run_cli_in_process("predict", "--model-dir", trained["model_dir"], "--json", prompt)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["context"] == context
    assert len(result["top_k"]) == 5


def test_a_megabyte_of_text_uses_only_its_last_words(trained):
    body = ("🎉 zebra-crossing émigré " * 40_000)[:1_000_000] + "\nthe cat sat on the"
    assert len(body.encode("utf-8")) > 1_000_000
    proc = run_cli_in_process("predict", "--json", "--model-dir", trained["model_dir"], "-",
                              stdin=body.encode("utf-8"))
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["context"] == ["the", "cat", "sat", "on", "the"]
    assert result["prediction"] == "mat"


@pytest.mark.parametrize("arch_flags", [
    ["--arch", "lstm", "--layers", 2, "--peephole", "--clip-norm", 1.0, "--dropout", 0.1],
    ["--arch", "gru", "--layers", 2],
])
def test_lstm_and_gru_stacks_learn_the_pattern(trained, tmp_path, arch_flags):
    model_dir = tmp_path / "lm"
    proc = run_cli_in_process("train", "--corpus", trained["glob"], "--vocab", trained["vocab"], "--model-dir",
                              model_dir, *TRAIN_FLAGS, *arch_flags, "--epochs", 3, "--learning-rate", 0.02)
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((model_dir / "metrics.json").read_text())
    config = json.loads((model_dir / "config.json").read_text())
    assert metrics["test"]["accuracy"] >= 0.95, metrics
    assert config["arch"] == arch_flags[1] and config["layers"] == 2
    assert json.loads(run_cli_in_process("predict", "--model-dir", model_dir, "--json", "the dog ran to the")
                      .stdout)["prediction"] == "park"

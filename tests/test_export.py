"""The SavedModel export (lm_app/export.py): what it writes, and a SavedModel that serves alone."""
import json
import os
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from lm_app.generate import Generator
from tests import forks
from tests.conftest import run_cli_in_process, tiny_corpus
from tests.test_atomic import mode


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    import keras

    from lm_app.config import TrainConfig
    from lm_app.models import window_model

    work = tmp_path_factory.mktemp("export")
    _, vocab = tiny_corpus(work, repeats=5)
    keras.utils.set_random_seed(1)
    model = window_model(TrainConfig(embedding=4, hidden=4), len(vocab.read_text().splitlines()))
    return model, vocab


def test_export_copies_what_training_left_and_drops_the_old_tflite(tiny_model, tmp_path):
    from lm_app.export import export

    model, vocab = tiny_model
    model_dir = tmp_path / "lm"
    (model_dir / "checkpoints").mkdir(parents=True)
    (model_dir / "history.json").write_text("{}")
    (model_dir / "checkpoints" / "run.json").write_text("{}")
    (model_dir / "model.tflite").write_bytes(b"the previous model's")
    before = {name: (model_dir / name).stat().st_ino for name in ("history.json", "checkpoints/run.json")}
    saved = os.umask(0o022)
    try:
        export(model, vocab, model_dir, 5, "words", k=3)
    finally:
        os.umask(saved)
    for name, inode in before.items():  # copied, not hard-linked: some file systems have no links
        assert (model_dir / name).read_text() == "{}"
        assert (model_dir / name).stat().st_ino != inode
    assert not (model_dir / "model.tflite").exists()
    assert mode(model_dir) == 0o755
    assert mode(model_dir / "saved_model.pb") == 0o644
    assert (model_dir / "saved_model.pb").stat().st_nlink == 1


def test_the_exported_stream_model_reads_the_whole_prompt(stream_model):
    """Served raw text like the others, but conditioned on more than the last few words."""
    work, _, _ = stream_model
    serve = tf.saved_model.load(str(work / "lm")).signatures["serving_default"]
    prompts = ["The cat sat on the mat and the dog ran to the", "near the river the cat sat on the",
               "", "the"]
    out = serve(text=tf.constant(prompts))
    words = [w[0].decode() for w in out["words"].numpy()]
    assert words[:2] == ["park", "mat"]
    assert out["probabilities"].shape == (4, 19)
    np.testing.assert_allclose(out["probabilities"].numpy().sum(-1), 1, atol=1e-5)


@pytest.mark.slow
def test_the_seq2seq_saved_model_decodes_alone_as_generate_greedy_does(seq2seq_model, tmp_path):
    _, model_dir = seq2seq_model
    prompts = ["the dog ran to the", "sat on the mat and", "near the"]
    # The command for one prompt; the others through the Generator it runs (a process each costs seconds).
    cli = json.loads(run_cli_in_process("generate", "--model-dir", model_dir, "--greedy", "--words", 3,
                                        "--json", prompts[0]).stdout)["continuation"]
    generator = Generator(model_dir)
    greedy = [generator.generate(p, 3, greedy=True)["continuation"] for p in prompts]
    assert cli == greedy[0]
    script = textwrap.dedent(f"""
        import json, sys
        import tensorflow as tf
        serve = tf.saved_model.load({str(model_dir)!r}).signatures["serving_default"]
        out = serve(text=tf.constant({prompts!r}))
        assert not [m for m in sys.modules if m.startswith(("lm_app", "tensorflow_text"))]
        print(json.dumps([c.decode() for c in out["continuation"].numpy()]))
        print(json.dumps([float(v) for v in out["log_prob"].numpy()]))
    """)
    proc = forks.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    continuations, log_probs = (json.loads(line) for line in proc.stdout.strip().splitlines()[-2:])
    assert continuations == greedy
    assert continuations[0] == "park while the"
    assert all(lp <= 0 for lp in log_probs)


@pytest.fixture(scope="module")
def adaptive_model(tmp_path_factory):
    """A stream LSTM with --softmax adaptive, trained by the command: its folder and corpus."""
    from tests.conftest import train_cli

    work = tmp_path_factory.mktemp("adaptive")
    glob, vocab = tiny_corpus(work, repeats=20)
    train_cli(glob, vocab, work / "lm", "--objective", "stream", "--arch", "lstm", "--softmax", "adaptive",
              "--cutoffs", "4,10", "--embedding", 16, "--hidden", 32, "--layers", 1, "--bptt", 5,
              "--batch-size", 4, "--epochs", 4, "--learning-rate", 0.02, "--top-k", 3, run=run_cli_in_process)
    return work / "lm", glob


def test_the_adaptive_softmax_model_serves_its_whole_distribution_alone(adaptive_model):
    """#17.1: the SavedModel's top-k over the whole vocabulary, in a process with TensorFlow only."""
    from lm_app.evaluate import load_trained

    model_dir, _ = adaptive_model
    prompts = ["the dog ran to the", "near the river the cat sat on the"]
    script = textwrap.dedent(f"""
        import json, sys
        import tensorflow as tf
        serve = tf.saved_model.load({str(model_dir)!r}).signatures["serving_default"]
        out = serve(text=tf.constant({prompts!r}))
        assert not [m for m in sys.modules if m.startswith("lm_app")]
        print(json.dumps([[w.decode() for w in row] for row in out["words"].numpy()]))
        print(json.dumps(out["probabilities"].numpy().tolist()))
    """)
    proc = forks.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    words, probabilities = (json.loads(line) for line in proc.stdout.strip().splitlines()[-2:])
    assert [row[0] for row in words] == ["park", "mat"]
    model, _, vocab = load_trained(model_dir)
    probabilities = np.array(probabilities)
    assert probabilities.shape == (2, len(vocab))
    np.testing.assert_allclose(probabilities.sum(-1), 1, atol=1e-5)
    ids = np.array([vocab.ids("the dog ran to the".split())], np.int32)
    log_probs, _ = model(ids)  # the layer's exact distribution, which the export keeps
    np.testing.assert_allclose(probabilities[0], np.exp(log_probs[0, -1].numpy()), atol=1e-5)


def test_predict_generate_and_evaluate_read_the_adaptive_softmax_model(adaptive_model):
    model_dir, glob = adaptive_model
    predicted = json.loads(run_cli_in_process("predict", "--model-dir", model_dir, "--json",
                                              "the dog ran to the").stdout)
    assert predicted["prediction"] == "park"
    generated = json.loads(run_cli_in_process("generate", "--model-dir", model_dir, "--greedy", "--words", 2,
                                              "--json", "the dog ran to the").stdout)
    assert generated["continuation"] == "park while"
    report = json.loads(run_cli_in_process("evaluate", "--model-dir", model_dir, "--corpus", glob,
                                           "--json").stdout)
    assert report["perplexity"] < 2  # the cycle corpus is learnt: exact probabilities near 1


def test_a_window_model_with_the_adaptive_softmax_exports_and_converts_to_tflite(tmp_path):
    """#17.1 for --objective window: the SavedModel and the .tflite both give the exact distribution."""
    from lm_app import tflite
    from lm_app.evaluate import load_trained
    from tests.conftest import train_cli

    glob, vocab = tiny_corpus(tmp_path, repeats=20)
    model_dir = tmp_path / "lm"
    train_cli(glob, vocab, model_dir, "--arch", "gru", "--softmax", "adaptive", "--cutoffs", "4,10", "--embedding", 8,
              "--hidden", 16, "--epochs", 1, run=run_cli_in_process)
    serve = tf.saved_model.load(str(model_dir)).signatures["serving_default"]
    probabilities = serve(text=tf.constant(["the dog ran to the"]))["probabilities"].numpy()
    model, _, words = load_trained(model_dir)
    ids = np.array([words.ids("the dog ran to the".split())], np.int32)
    np.testing.assert_allclose(probabilities, np.exp(model(ids).numpy()), atol=1e-6)
    np.testing.assert_allclose(probabilities.sum(), 1, atol=1e-5)
    tflite.export_tflite(model_dir, tmp_path / "lm.tflite")
    got = tflite.run_tflite((tmp_path / "lm.tflite").read_bytes(), ids)
    np.testing.assert_allclose(got, probabilities, atol=1e-5)

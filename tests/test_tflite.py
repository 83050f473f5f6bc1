"""``export --format tflite``: the .tflite network gives the SavedModel's probabilities on the same ids."""
import importlib.util
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import ROOT, assert_usage_error, run_cli_in_process, tiny_corpus, train_cli

pytestmark = pytest.mark.slow

PROMPTS = ["The dog ran to the", "Zebra!  on THE", "the", "the bird sang over the house near the"]
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def models(window_rnn, tmp_path_factory):
    """Tiny rnn and lstm window models; the rnn a copy of the session's, as the export writes into it."""
    work = tmp_path_factory.mktemp("tflite")
    glob, vocab = tiny_corpus(work)
    dirs = {"rnn": work / "rnn", "lstm": work / "lstm"}
    shutil.copytree(window_rnn, dirs["rnn"])
    train_cli(glob, vocab, dirs["lstm"], "--arch", "lstm", "--epochs", 3, "--embedding", 8, "--hidden", 16,
              run=run_cli_in_process)
    exported = run_cli_in_process("export", "--format", "tflite", "--model-dir", dirs["rnn"])
    assert exported.returncode == 0, exported.stderr
    dirs["rnn_stdout"] = exported.stdout
    return dirs


def saved_model_outputs(model_dir, prompts):
    """The SavedModel's probabilities and the ids it fed its network (its context, through vocab.txt)."""
    import tensorflow as tf

    serve = tf.saved_model.load(str(model_dir)).signatures["serving_default"]
    out = serve(text=tf.constant(prompts))
    vocab = [line.split("\t")[0] for line in
             (model_dir / "assets" / "vocab.txt").read_text(encoding="utf-8").splitlines()]
    index = {word: i for i, word in enumerate(vocab)}
    ids = np.array([[index[w.decode()] for w in row] for row in out["context"].numpy()], np.int32)
    return ids, out["probabilities"].numpy()


def test_the_cli_writes_the_model_file(models):
    path = models["rnn"] / "model.tflite"
    assert path.read_bytes()[4:8] == b"TFL3"  # the TFLite flatbuffer identifier
    assert models["rnn_stdout"].startswith(f"wrote {path} (")
    assert "ids int32 [1, 5] -> probabilities float32 [1, 19]; builtin ops only" in models["rnn_stdout"]
    assert not [p for p in models["rnn"].iterdir() if p.name.startswith(".model.tflite")]


@pytest.mark.parametrize("arch", ["rnn", "lstm"])
def test_tflite_probabilities_equal_the_saved_model(models, arch, tmp_path):
    from lm_app import tflite
    from lm_app.corpus import Vocabulary

    model_dir = models[arch]
    out = tmp_path / "sub" / "next_word.tflite"
    result = tflite.export_tflite(model_dir, out)
    assert result["path"] == str(out) and result["select_tf_ops"] is False
    ids, expected = saved_model_outputs(model_dir, PROMPTS)
    assert (ids[1] == 0).sum() == 2 and (ids[2] == 0).sum() == 4  # short prompts are left-padded
    vocab = Vocabulary.load(model_dir / "vocab.txt")
    content = out.read_bytes()
    for prompt, row, want in zip(PROMPTS, ids, expected):
        assert tflite.window_ids(prompt, vocab, 5) == row.tolist()  # the Python side agrees
        got = tflite.run_tflite(content, row[None, :])
        assert got.shape == (1, 19) and got.dtype == np.float32
        np.testing.assert_allclose(got[0], want, atol=TOLERANCE, rtol=0)
        assert abs(got.sum() - 1) < 1e-5


def test_the_interpreter_sees_a_fixed_int32_window(models):
    from lm_app import tflite

    interpreter = tflite.interpreter((models["rnn"] / "model.tflite").read_bytes())
    (signature,) = interpreter.get_signature_list().values()
    assert signature == {"inputs": ["ids"], "outputs": ["probabilities"]}
    (inp,), (outp,) = interpreter.get_input_details(), interpreter.get_output_details()
    assert inp["dtype"] == np.int32 and inp["shape"].tolist() == [1, 5]
    assert outp["dtype"] == np.float32 and outp["shape"].tolist() == [1, 19]


def test_the_readme_snippet_runs_on_litert_without_tensorflow_or_warnings(models):
    """#12.19: the README's TFLite example uses the supported interpreter, not tf.lite's deprecated one."""
    if importlib.util.find_spec("ai_edge_litert") is None:
        pytest.skip("ai-edge-litert is not installed (pip install -e '.[test]' installs it)")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    snippet = readme[readme.index("## TFLite"):].split("```python\n", 1)[1].split("```", 1)[0]
    prompt = "the bird sang over the"
    script = (snippet.replace("saved_models/lm", str(models["rnn"]))
              .replace("some of them looks like", prompt)
              + "import sys\nassert not [m for m in sys.modules if m.startswith('tensorflow')]\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-W", "error", "-c", script], capture_output=True, text=True,
                          cwd=models["rnn"], env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "Warning" not in proc.stderr, proc.stderr
    _, probabilities = saved_model_outputs(models["rnn"], [prompt])
    words = [line.split("\t")[0] for line in
             (models["rnn"] / "vocab.txt").read_text(encoding="utf-8").splitlines()]
    assert proc.stdout.split() == [words[int(np.argmax(probabilities[0][1:])) + 1]]


@pytest.mark.parametrize("change, fragment", [
    ({"objective": "stream"}, "cannot export a --objective stream model"),
    ({"arch": "seq2seq"}, "cannot export an --arch seq2seq model"),
])
def test_kinds_that_do_not_convert_are_refused(models, tmp_path, change, fragment):
    """Stream and seq2seq models are refused before anything is loaded, naming what does convert."""
    model_dir = tmp_path / "lm"
    model_dir.mkdir()
    config = json.loads((models["rnn"] / "config.json").read_text())
    (model_dir / "config.json").write_text(json.dumps({**config, **change}))
    proc = run_cli_in_process("export", "--format", "tflite", "--model-dir", model_dir)
    assert_usage_error(proc, fragment)
    assert "window models of --arch rnn, lstm, gru, attention" in proc.stderr
    assert not (model_dir / "model.tflite").exists()


def test_a_missing_model_is_one_line(tmp_path):
    assert_usage_error(run_cli_in_process("export", "--format", "tflite", "--model-dir", tmp_path / "none"),
                       "model settings not found")
    assert_usage_error(run_cli_in_process("export", "--format", "onnx"), "invalid choice")

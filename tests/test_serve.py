"""``serve``: TensorFlow Serving's REST API over real HTTP, the server a real ``python -m lm_app serve``."""
import base64
import concurrent.futures
import http.client
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading

import pytest

from tests.conftest import ROOT, assert_usage_error, run_cli, tiny_corpus, train_cli

pytestmark = pytest.mark.slow

MAX_BODY = 64 * 1024
PROMPTS = ["The dog ran to the", "Zebra!  on THE", "the bird sang over the", "near the"]
READY = re.compile(r'^serving (?P<dir>.+) as "(?P<name>[^"]+)" on http://127\.0\.0\.1:(?P<port>\d+)$')


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A tiny model trained once on the cycle corpus."""
    work = tmp_path_factory.mktemp("serve")
    glob, vocab = tiny_corpus(work)
    train_cli(glob, vocab, work / "lm", "--epochs", 3, "--embedding", 8, "--hidden", 16,
              "--top-k", 5, "--seed", 3)
    return work / "lm"


class Server:
    """``python -m lm_app serve`` in its own process, on a port the OS picks (``--port 0``)."""

    def __init__(self, model_dir, *flags):
        env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")
        self.stderr = open(model_dir.parent / f"serve-{id(self)}.err", "w+")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "lm_app", "serve", "--model-dir", str(model_dir), "--port", "0",
             *map(str, flags)], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=self.stderr, text=True)
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        line = self.lines.get(timeout=300)  # a guard against a hang, not a speed limit
        match = READY.match(line or "")
        assert match, (line, self.read_stderr())
        self.port, self.name = int(match["port"]), match["name"]
        assert match["dir"] == str(model_dir)

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def read_stderr(self):
        self.stderr.seek(0)
        return self.stderr.read()

    def request(self, method, path, body=None, headers=None):
        """(status, parsed JSON) of one HTTP request on a fresh connection."""
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return response.status, json.loads(response.read())
        finally:
            conn.close()

    def predict(self, payload, path="/v1/models/lm:predict"):
        return self.request("POST", path, payload, {"Content-Type": "application/json"})

    def stop(self):
        """SIGTERM, then the exit code and everything it wrote."""
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=120)
        rest = []
        while (line := self.lines.get(timeout=30)) is not None:
            rest.append(line)
        return code, rest, self.read_stderr()


@pytest.fixture(scope="module")
def server(model_dir):
    server = Server(model_dir, "--max-body", MAX_BODY)
    yield server
    if server.proc.poll() is None:
        server.proc.kill()
        server.proc.wait()


def top_words(row):
    return row["words"], row["probs"]


def test_row_predictions_equal_the_predict_command(server, model_dir):
    status, body = server.predict({"instances": [PROMPTS[0], {"text": PROMPTS[1]}]})
    assert status == 200, body
    assert list(body) == ["predictions"] and len(body["predictions"]) == 2
    for prompt, row in zip(PROMPTS[:2], body["predictions"]):
        cli = run_cli("predict", "--model-dir", model_dir, "--json", prompt)
        assert cli.returncode == 0, cli.stderr
        expected = json.loads(cli.stdout)["top_k"]
        assert set(row) == {"words", "probs"}
        assert row["words"] == [item["word"] for item in expected]
        assert row["probs"] == [item["prob"] for item in expected]


def test_columnar_requests_get_columnar_outputs(server):
    status, rows = server.predict({"instances": PROMPTS})
    assert status == 200, rows
    expected = {"words": [r["words"] for r in rows["predictions"]],
                "probs": [r["probs"] for r in rows["predictions"]]}
    for inputs in (PROMPTS, {"text": PROMPTS}):
        status, body = server.predict({"inputs": inputs})
        assert status == 200, body
        assert body == {"outputs": expected}
    # TF Serving's binary form, {"b64": ...}, and the versioned URL give the same answer.
    status, body = server.predict(
        {"signature_name": "serving_default",
         "instances": [{"b64": base64.b64encode(PROMPTS[2].encode()).decode()}]},
        "/v1/models/lm/versions/1:predict")
    assert status == 200, body
    assert body["predictions"][0] == rows["predictions"][2]


def test_model_status(server):
    expected = {"model_version_status": [
        {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]}
    assert server.request("GET", "/v1/models/lm") == (200, expected)
    assert server.request("GET", "/v1/models/lm/versions/1") == (200, expected)


def test_metadata_matches_the_saved_signature(server, model_dir):
    """The metadata describes what the SavedModel's own SignatureDef says: names, dtypes, shapes."""
    from tensorflow.core.framework import types_pb2
    from tensorflow.core.protobuf import saved_model_pb2

    status, body = server.request("GET", "/v1/models/lm/metadata")
    assert status == 200, body
    assert body["model_spec"] == {"name": "lm", "signature_name": "", "version": "1"}
    served = body["metadata"]["signature_def"]["signature_def"]["serving_default"]
    saved = saved_model_pb2.SavedModel.FromString((model_dir / "saved_model.pb").read_bytes())
    signature = saved.meta_graphs[0].signature_def["serving_default"]
    assert served["method_name"] == signature.method_name == "tensorflow/serving/predict"
    for kind in ("inputs", "outputs"):
        expected = getattr(signature, kind)
        assert set(served[kind]) == set(expected)
        for key, info in expected.items():
            assert served[kind][key]["name"] == info.name
            assert served[kind][key]["dtype"] == types_pb2.DataType.Name(info.dtype)
            assert [int(d["size"]) for d in served[kind][key]["tensor_shape"]["dim"]] == \
                [d.size for d in info.tensor_shape.dim]
    assert served["outputs"]["words"]["tensor_shape"]["dim"][1]["size"] == "5"


@pytest.mark.parametrize("body", [
    b'{"instances": ["the cat"',  # malformed JSON
    b"",
    b'["the cat"]',  # not an object
    b'{"text": ["the cat"]}',  # neither instances nor inputs
    b'{"instances": []}',
    b'{"inputs": []}',
    b'{"instances": [3]}',  # not a string
    b'{"instances": [null]}',
    b'{"instances": [["the", "cat"]]}',  # wrong shape: the input is [-1] strings
    b'{"inputs": "the cat"}',  # a scalar for a [-1] input
    b'{"inputs": [["the cat"]]}',
    b'{"instances": [{"txt": "the cat"}]}',  # unknown input name
    b'{"inputs": {"text": ["a"], "extra": ["b"]}}',
    b'{"instances": ["a"], "inputs": ["a"]}',
    b'{"instances": [{"b64": "not base64!"}]}',
    b'{"instances": ["a"], "signature_name": "classify"}',
])
def test_bad_requests_are_400_with_an_error(server, body):
    status, answer = server.predict(body)
    assert status == 400, answer
    assert list(answer) == ["error"] and isinstance(answer["error"], str) and answer["error"]


def test_a_body_over_the_limit_is_413(server):
    status, answer = server.predict({"instances": ["the cat " * (MAX_BODY // 8)]})
    assert status == 413 and "limit" in answer["error"], answer
    status, answer = server.predict({"instances": ["the cat " * (MAX_BODY // 16)]})
    assert status == 200, answer  # under the limit is fine, and the server is still up


def test_unknown_models_and_paths_are_404(server):
    for method, path in [("POST", "/v1/models/other:predict"), ("GET", "/v1/models/other"),
                         ("POST", "/v1/models/lm/versions/2:predict"), ("GET", "/v1/models/lm/metadata/x"),
                         ("GET", "/v2/models/lm")]:
        status, answer = server.request(method, path, {"instances": ["the"]})
        assert status == 404, (path, answer)
        assert list(answer) == ["error"]
    assert "Latest(other)" in server.predict({"instances": ["x"]}, "/v1/models/other:predict")[1]["error"]


def test_concurrent_requests_each_get_their_own_answer(server):
    """Twenty requests at once are batched together; each still gets the rows of its own texts."""
    alone = {p: server.predict({"instances": [p]})[1]["predictions"][0] for p in PROMPTS}

    def one(i):
        texts = [PROMPTS[i % 4], PROMPTS[(i + 1) % 4]][: 1 + i % 2]
        return texts, server.predict({"instances": texts})

    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        results = list(pool.map(one, range(20)))
    for texts, (status, body) in results:
        assert status == 200, body
        assert body["predictions"] == [alone[t] for t in texts]


def test_sigterm_stops_the_server_cleanly(model_dir):
    server = Server(model_dir, "--name", "other")
    assert server.name == "other"
    assert server.predict({"instances": ["the"]}, "/v1/models/other:predict")[0] == 200
    code, stdout, stderr = server.stop()
    assert code in (0, -signal.SIGTERM), stderr
    assert "Traceback" not in stderr and "Error" not in stderr, stderr
    assert stdout[-2].startswith("stopping")
    assert stdout[-1] == "served 1 request(s), 1 text(s), in 1 model call(s)"


def test_startup_errors_are_one_line(model_dir, tmp_path):
    assert_usage_error(run_cli("serve", "--model-dir", tmp_path / "none", "--port", 0),
                       "no trained model")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "saved_model.pb").write_bytes((model_dir / "saved_model.pb").read_bytes()[:100])
    assert_usage_error(run_cli("serve", "--model-dir", broken, "--port", 0), "cannot load the model")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert_usage_error(run_cli("serve", "--model-dir", model_dir, "--port", port),
                           f"cannot listen on 127.0.0.1:{port}")
    assert_usage_error(run_cli("serve", "--model-dir", model_dir, "--name", "a/b"), "--name")

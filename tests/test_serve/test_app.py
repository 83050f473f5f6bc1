"""``serve`` (lm_app/serve/app.py): TensorFlow Serving's REST API over real HTTP, the server a real ``python -m lm_app serve``."""
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

from tests import forks
from tests.conftest import ROOT, assert_usage_error, run_cli, run_cli_in_process
from tests.test_serve.test_requests import BAD_REQUESTS

pytestmark = pytest.mark.slow

MAX_BODY = 64 * 1024
PROMPTS = ["The dog ran to the", "Zebra!  on THE", "the bird sang over the", "near the"]
READY = re.compile(r'^serving (?P<dir>.+) as "(?P<name>[^"]+)" on http://127\.0\.0\.1:(?P<port>\d+)$')


@pytest.fixture(scope="module")
def model_dir(window_rnn):
    """The session's tiny window model: every test here only reads it."""
    return window_rnn


class Server:
    """``python -m lm_app serve`` in its own process, on a port the OS picks (``--port 0``)."""

    def __init__(self, model_dir, *flags):
        env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")
        self.stderr = open(model_dir.parent / f"serve-{id(self)}.err", "w+")
        self.proc = forks.Popen(
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
        return self.predict_with(payload, {"Content-Type": "application/json"}, path)

    def predict_with(self, payload, headers, path="/v1/models/lm:predict"):
        return self.request("POST", path, payload, headers)

    def stop(self):
        """SIGTERM, then the exit code and everything it wrote."""
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=120)
        rest = []
        while (line := self.lines.get(timeout=30)) is not None:
            rest.append(line)
        return code, rest, self.read_stderr()


def running(server):
    yield server
    if server.proc.poll() is None:
        server.proc.kill()
        server.proc.wait()


@pytest.fixture(scope="module")
def server(model_dir):
    yield from running(Server(model_dir, "--max-body", MAX_BODY))


@pytest.fixture(scope="module")
def strict(model_dir):
    """A server with tiny limits, to see each of them act."""
    yield from running(Server(model_dir, "--max-connections", 4, "--body-timeout", 1, "--idle-timeout", 1))


def top_words(row):
    return row["words"], row["probs"]


def test_row_predictions_equal_the_predict_command(server, model_dir):
    status, body = server.predict({"instances": [PROMPTS[0], {"text": PROMPTS[1]}]})
    assert status == 200, body
    assert list(body) == ["predictions"] and len(body["predictions"]) == 2
    from lm_app import predict

    # The command for one prompt; both through the library call it makes (a process each costs seconds).
    cli = run_cli_in_process("predict", "--model-dir", model_dir, "--json", PROMPTS[0])
    assert cli.returncode == 0, cli.stderr
    results = predict.predict(predict.load(model_dir), PROMPTS[:2])
    assert json.loads(cli.stdout)["top_k"] == results[0]["top_k"]
    for row, result in zip(body["predictions"], results):
        expected = result["top_k"]
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


@pytest.mark.parametrize("body", BAD_REQUESTS)
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
    # 100 texts are cut into model calls of at most 64 (MAX_BATCH).
    assert server.predict({"instances": ["the cat"] * 100}, "/v1/models/other:predict")[0] == 200
    code, stdout, stderr = server.stop()
    assert code in (0, -signal.SIGTERM), stderr
    assert "Traceback" not in stderr and "Error" not in stderr, stderr
    assert stdout[-2].startswith("stopping")
    assert stdout[-1] == "served 2 request(s), 101 text(s), in 3 model call(s)"


def test_startup_errors_are_one_line(model_dir, tmp_path):
    # A missing or broken model in-process (no regression could make them serve); the others as
    # processes, where a regression would serve for ever.
    assert_usage_error(run_cli_in_process("serve", "--model-dir", tmp_path / "none", "--port", 0),
                       "no trained model")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "saved_model.pb").write_bytes((model_dir / "saved_model.pb").read_bytes()[:100])
    assert_usage_error(run_cli_in_process("serve", "--model-dir", broken, "--port", 0), "cannot load the model")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert_usage_error(run_cli("serve", "--model-dir", model_dir, "--port", port),
                           f"cannot listen on 127.0.0.1:{port}")
    assert_usage_error(run_cli("serve", "--model-dir", model_dir, "--name", "a/b"), "--name")
    for wait in ("-1", "nan", "30000"):  # 30 s: the default --deadline, which every request would miss
        assert_usage_error(run_cli("serve", "--model-dir", model_dir, "--batch-wait-ms", wait),
                           "--batch-wait-ms must be 0 or more and shorter than --deadline, got")


# The rules of requests.py, batcher.py and connections.py (tested in-process beside this file) over real HTTP.

def test_the_instance_limit_and_hostile_bodies_over_http(server):
    status, answer = server.predict({"instances": ["the cat"] * 257})
    assert status == 400 and "--max-instances" in answer["error"], answer
    for body in (b"[" * 60_000, b'{"instances": [' + b"9" * 10_000 + b"]}", b'{"instances": [1e999999]}',
                 b'{"instances": ["\\ud800"]}', '{"instances": ["日本語"]}'.encode()):
        status, answer = server.predict(body)
        assert status == 400 and list(answer) == ["error"], (body[:40], answer)
    status, answer = server.predict({"instances": ["the cat"] * 256})
    assert status == 200 and len(answer["predictions"]) == 256
    assert "Traceback" not in server.read_stderr()


def raw_request(port, request):
    """The server's whole answer to bytes sent as they are, on a connection it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def test_unreadable_bodies_are_a_400_and_not_logged(server):
    head = (b"POST /v1/models/lm:predict HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n"
            b"Content-Type: application/json\r\n" % server.port)
    bad_gzip = b"Content-Encoding: gzip\r\nContent-Length: 10\r\n\r\n0123456789"
    answer = raw_request(server.port, head + bad_gzip)
    assert answer.startswith(b"HTTP/1.1 400 ") and b'{"error": "the request body cannot be read' in answer
    for framing in (b"Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",  # aiohttp's own 400s
                    b"Content-Encoding: br\r\nContent-Length: 10\r\n\r\n0123456789"):
        assert raw_request(server.port, head + framing).split(b" ")[1] == b"400"
    assert server.predict({"instances": ["the"]})[0] == 200
    assert "Traceback" not in server.read_stderr() and "Error" not in server.read_stderr()


def test_requests_from_a_web_page_are_refused(server):
    good = {"Content-Type": "application/json"}
    for host in ("localhost", "127.0.0.1", "[::1]"):
        status, _ = server.predict_with({"instances": ["the"]}, {**good, "Host": f"{host}:{server.port}"})
        assert status == 200, host
    with_charset = {"Content-Type": "application/json; charset=utf-8"}
    assert server.predict_with({"instances": ["the"]}, with_charset)[0] == 200
    for host in ("evil.example:%d" % server.port, "localhost", "localhost:1"):  # DNS rebinding
        status, answer = server.predict_with({"instances": ["the"]}, {**good, "Host": host})
        assert status == 400 and "Host" in answer["error"], (host, answer)
    status, answer = server.request("GET", "/v1/models/lm", headers={"Host": "evil.example"})
    assert status == 400, answer
    for kind in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None):
        status, answer = server.predict_with({"instances": ["the"]}, {"Content-Type": kind} if kind else {})
        assert status == 415 and "application/json" in answer["error"], (kind, answer)


def slow_client(port, body_bytes=b'{"instances": ['):
    """A socket that sent a whole request head and the start of a longer body, then stalls."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(b"POST /v1/models/lm:predict HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                 b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n%s" % (port, body_bytes))
    return sock


def closed_by_server(sock):
    """Whether the server closed ``sock`` (an answer before closing counts too), waiting at most 30 s."""
    sock.settimeout(30)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    return True


def test_two_thousand_slow_clients_do_not_lock_out_a_normal_one(server):
    slow = []
    try:
        for _ in range(2000):
            slow.append(slow_client(server.port))
        status, answer = server.predict({"instances": ["the dog ran to the"]})
        assert status == 200, answer
    finally:
        for sock in slow:
            sock.close()
    assert server.predict({"instances": ["the"]})[0] == 200
    assert server.read_stderr() == ""  # closing them for room is routine, not an error to log


def test_slow_and_idle_connections_are_closed(strict):
    slow = [slow_client(strict.port) for _ in range(4)]  # as many as --max-connections
    status, answer = strict.predict({"instances": ["the dog ran to the"]})
    assert status == 200, answer
    assert closed_by_server(slow[0])  # the longest waiting made room
    # The others get a 408 once --body-timeout has passed.
    slow[1].settimeout(30)
    head = slow[1].recv(65536)
    assert head.startswith(b"HTTP/1.1 408 "), head
    assert b"did not arrive within 1 s" in head
    idle = socket.create_connection(("127.0.0.1", strict.port))
    idle.sendall(b"POST /v1/models/lm:predict HTTP/1.1\r\nHost: 127")  # half a head, then nothing
    assert closed_by_server(idle)
    for sock in slow + [idle]:
        sock.close()
    assert "Traceback" not in strict.read_stderr()


def test_a_model_error_is_a_short_500():
    """The client hears that the model failed, never TensorFlow's node names and shapes."""
    import asyncio

    from aiohttp import ClientSession
    from aiohttp.test_utils import TestServer

    from lm_app.serve.app import make_app

    class FailingModel:
        name, mode, outputs = "lm", "words", ["words"]

        def __call__(self, texts):
            raise ValueError("{{node model/gru/MatMul}} Matrix size-incompatible: In[0]: [3,8], "
                             "In[1]: [16,48]")

    async def main():
        async with TestServer(make_app(FailingModel()), host="127.0.0.1") as test_server:
            async with ClientSession() as session:
                async with session.post(test_server.make_url("/v1/models/lm:predict"),
                                        json={"instances": ["the cat"]}) as response:
                    return response.status, await response.json()

    status, answer = asyncio.run(main())
    assert status == 500 and answer == {"error": "the model failed on this request"}


def test_predict_and_the_server_refuse_text_without_words_alike(server, model_dir):
    """One rule: no word left after normalisation is refused, whether the text was empty or not."""
    for text in ("日本語", "", "  42 !"):
        assert_usage_error(run_cli_in_process("predict", "--model-dir", model_dir, text),
                           "the text to predict from has no words: it is empty after normalisation")
        status, answer = server.predict({"instances": [text]})
        assert status == 400 and "no words" in answer["error"], answer
        assert_usage_error(run_cli_in_process("generate", "--model-dir", model_dir, text),
                           "the text to continue has no words: it is empty after normalisation")
    assert run_cli_in_process("predict", "--model-dir", model_dir, "日本語 the").returncode == 0

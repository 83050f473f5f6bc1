"""Every command, run as a user runs it, prints nothing on stderr but lm_app's own lines.

No TensorFlow warnings, AutoGraph notices, C++ log lines or library
deprecations: a user's environment sets no ``TF_CPP_MIN_LOG_LEVEL``, so these
runs drop it (and every other ``TF_*`` or ``AUTOGRAPH_*`` setting) that the
test session has; lm_app must quiet TensorFlow itself.
"""
import http.client
import json
import os
import re
import signal
import subprocess
import sys

import pytest

from tests.conftest import ROOT, cycle_corpus

# lm_app's own lines: its status, warning and error lines, which name it ("lm_app: compiling ...",
# "lm_app train: error: ..."), and generate's score of the text it printed on stdout.
OWN_LINES = [re.compile(r"lm_app( [a-z-]+)?: \S.*"), re.compile(r"\(log-probability -?\d+\.\d+\)")]
COMMANDS = ["build-dict", "train", "evaluate", "predict", "generate", "export", "serve"]
GUARD = 600  # seconds: a guard against a hang, not a speed limit


def user_env():
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TF_", "AUTOGRAPH_", "PYTHONWARNINGS"))}
    env["PYTHONPATH"] = str(ROOT)
    return env


def lm_app(*args, cwd):
    return subprocess.run([sys.executable, "-m", "lm_app", *map(str, args)], cwd=cwd, env=user_env(),
                          capture_output=True, text=True, timeout=GUARD)


def serve_once(model_dir, cwd):
    """Start ``serve``, make one prediction request, stop it with SIGTERM: ``(exit code, stderr, answer)``."""
    err = open(cwd / "serve.err", "w+")
    proc = subprocess.Popen([sys.executable, "-m", "lm_app", "serve", "--model-dir", model_dir, "--port", "0"],
                            cwd=cwd, env=user_env(), stdout=subprocess.PIPE, stderr=err, text=True)
    try:
        ready = proc.stdout.readline()
        port = re.search(r"http://127\.0\.0\.1:(\d+)", ready)
        assert port, (ready, proc.poll())
        conn = http.client.HTTPConnection("127.0.0.1", int(port[1]), timeout=GUARD)
        conn.request("POST", "/v1/models/lm:predict", json.dumps({"instances": ["the cat sat on the"]}),
                     {"Content-Type": "application/json"})
        response = conn.getresponse()
        answer = (response.status, json.loads(response.read()))
        conn.close()
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=GUARD)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err.seek(0)
    return proc.returncode, err.read(), answer


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Each command once on one tiny model: ``{command: (exit code, stderr)}``."""
    work = tmp_path_factory.mktemp("quiet")
    glob = str(cycle_corpus(work / "corpus") / "*.txt")
    results = {}

    def run(name, *args):
        proc = lm_app(name, *args, cwd=work)
        results[name] = proc.returncode, proc.stderr

    run("build-dict", "--corpus", glob, "--vocab", "vocab.txt")
    run("train", "--corpus", glob, "--vocab", "vocab.txt", "--model-dir", "lm", "--epochs", 1,
        "--embedding", 8, "--hidden", 16, "--top-k", 5, "--seed", 3)
    run("evaluate", "--model-dir", "lm", "--corpus", work / "corpus" / "part0.txt")
    run("predict", "--model-dir", "lm", "the cat sat on the")
    run("generate", "--model-dir", "lm", "--words", 3, "--seed", 1, "the cat")
    run("export", "--model-dir", "lm", "--format", "tflite")
    code, stderr, answer = serve_once("lm", work)
    assert answer[0] == 200, answer
    results["serve"] = code, stderr
    return results


@pytest.mark.slow
@pytest.mark.parametrize("command", COMMANDS)
def test_a_command_prints_only_lm_apps_own_lines_on_stderr(runs, command):
    code, stderr = runs[command]
    assert code == 0, stderr
    foreign = [line for line in stderr.splitlines() if not any(p.fullmatch(line) for p in OWN_LINES)]
    assert not foreign, "\n".join(foreign)

"""Load test of ``python -m lm_app serve`` on loopback: throughput, latency and errors.

Starts the server as a subprocess on a free port, runs ``--clients`` concurrent
aiohttp clients for ``--seconds`` (each sends one request at a time, one
prompt per request, TF Serving's row format), then stops the server with
SIGTERM and prints requests/second, p50/p99 latency, the error count (must be
0; the exit code is 1 otherwise) and how many model calls the server's
batching needed for all those requests.

    .venv/bin/python bench/serve.py [--model-dir DIR] [--seconds 10] [--clients 16]

Without ``--model-dir`` it first trains a tiny model into a temporary folder
through the CLI (a few seconds).  Run it alone: it measures the whole machine.
"""
import argparse
import asyncio
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = ["some of them looks like", "the dog ran to the", "the bird sang over the", "near the",
           "the cat sat on the mat and the", "zebra", "the house near the river and"]
CYCLE = ("the cat sat on the mat and the dog ran to the park while the bird sang "
         "over the house near the river")


def cli(*args):
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, "-m", "lm_app", *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"lm_app {args[0]} failed:\n{proc.stderr}")


def train_tiny(work):
    """A small model on a repeated sentence: enough to serve, fast to train."""
    corpus = work / "corpus"
    corpus.mkdir()
    (corpus / "cycle.txt").write_text((CYCLE + "\n") * 120, encoding="utf-8")
    cli("build-dict", "--corpus", corpus / "*.txt", "--vocab", work / "vocab.txt", "--min-count", 1)
    cli("train", "--corpus", corpus / "*.txt", "--vocab", work / "vocab.txt", "--model-dir",
        work / "lm", "--epochs", 2, "--embedding", 16, "--hidden", 32, "--top-k", 5)
    return work / "lm"


class ServerProcess:
    def __init__(self, model_dir, name):
        env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "lm_app", "serve", "--model-dir", str(model_dir), "--port", "0",
             "--name", name], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
        self.lines = []
        self.ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        if not self.ready.wait(300) or self.proc.poll() is not None:
            self.proc.kill()
            sys.exit(f"the server did not start: {self.lines}")
        self.url = re.search(r"http://\S+$", self.lines[0])[0]

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            self.ready.set()
        self.ready.set()

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=60)
        time.sleep(0.1)  # let the reader thread take the last lines
        return code


async def load(url, name, clients, seconds):
    import aiohttp

    latencies, errors = [], []
    endpoint = f"{url}/v1/models/{name}:predict"
    deadline = None

    async def client(session, seed):
        rng = random.Random(seed)
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            try:
                async with session.post(endpoint, json={"instances": [rng.choice(PROMPTS)]}) as r:
                    body = await r.json()
                    if r.status != 200 or len(body["predictions"][0]["words"]) == 0:
                        errors.append(f"{r.status}: {body}")
                        continue
            except Exception as e:  # a refused or broken connection counts as an error
                errors.append(repr(e))
                continue
            latencies.append(time.perf_counter() - start)

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        # One request first, so the first model call is not in the measurement.
        async with session.post(endpoint, json={"instances": ["warm up"]}) as r:
            await r.read()
        began = time.perf_counter()
        deadline = began + seconds
        await asyncio.gather(*(client(session, i) for i in range(clients)))
        elapsed = time.perf_counter() - began
    return latencies, errors, elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", help="a trained model folder (default: train a tiny one)")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the load (default: 10)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients (default: 16)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(args.model_dir) if args.model_dir else train_tiny(Path(tmp))
        server = ServerProcess(model_dir, "lm")
        try:
            latencies, errors, elapsed = asyncio.run(load(server.url, "lm", args.clients, args.seconds))
        finally:
            code = server.stop()
    latencies.sort()
    ms = [x * 1000 for x in latencies]
    print(f"{args.clients} clients for {elapsed:.1f} s on {server.url}: {len(ms)} requests")
    if ms:
        p99 = ms[min(len(ms) - 1, int(0.99 * len(ms)))]
        print(f"throughput  {len(ms) / elapsed:,.0f} requests/s")
        print(f"latency     p50 {statistics.median(ms):.1f} ms, p99 {p99:.1f} ms, max {ms[-1]:.1f} ms")
    print(f"errors      {len(errors)}" + (f" (first: {errors[0]})" if errors else ""))
    print(f"server      {server.lines[-1]} (exit code {code})")
    return 1 if errors or not ms or code not in (0, -signal.SIGTERM) else 0


if __name__ == "__main__":
    sys.exit(main())

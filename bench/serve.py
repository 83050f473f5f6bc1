"""Load test of ``python -m lm_app serve`` on loopback: throughput, latency, errors, and the batching wait.

Starts the server as a subprocess on a free port.  First, for each
``--batch-wait-ms`` value, a server with that wait serves ``--clients``
concurrent raw clients for ``--seconds`` (each sends one request at a time,
one prompt per request, TF Serving's row format, on a kept-alive connection):
one row per wait of requests/second, p50/p99 latency, errors and the mean
number of texts per model call.  The raw clients are a few lines of asyncio,
not aiohttp: they run on the same cores as the server, and the point is to
measure the server, so they should take as little of the machine as they can.
Then a server with the default wait serves the same load from aiohttp clients
(the figure a user's aiohttp client sees), alone and beside a hostile mix for
as long: ``--slow`` connections that send a request head and trickle the body
a byte a second (reconnecting when closed), and clients that loop on oversized
bodies, too many instances and deeply nested JSON.  Every run must have 0
errors (the exit code is 1 otherwise).  The figures also go to
``bench/results/serve.json`` and ``bench/RESULTS.md``.

    .venv/bin/python bench/serve.py [--model-dir DIR] [--seconds 10] [--clients 8] [--slow 2000]
                                    [--batch-wait-ms 0,0.5,1,2]

Without ``--model-dir`` it first trains a tiny model into a temporary folder
through the CLI (a few seconds).  Run it alone: it measures the whole machine.
"""
import argparse
import asyncio
import collections
import json
import os
import random
import re
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench import record  # noqa: E402

PROMPTS = ["some of them looks like", "the dog ran to the", "the bird sang over the", "near the",
           "the cat sat on the mat and the", "zebra", "the house near the river and"]
JSON = {"Content-Type": "application/json"}
CYCLE = ("the cat sat on the mat and the dog ran to the park while the bird sang "
         "over the house near the river")


def cli(*args):
    """One command of lm_app's CLI in its own process; its stdout (a failure ends the benchmark)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, "-m", "lm_app", *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"lm_app {args[0]} failed:\n{proc.stderr}")
    return proc.stdout


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
    def __init__(self, model_dir, name, *flags):
        env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "lm_app", "serve", "--model-dir", str(model_dir), "--port", "0",
             "--name", name, *map(str, flags)], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
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

    def mean_batch(self):
        """Texts per model call, from the server's last line (after ``stop``)."""
        served = re.search(r"(\d+) text\(s\), in (\d+) model call", self.lines[-1])
        return int(served[1]) / max(int(served[2]), 1) if served else None


async def raw_load(url, name, clients, seconds):
    """The latencies, errors and elapsed time of ``clients`` raw HTTP/1.1 keep-alive clients."""
    parts = urlsplit(url)
    path = f"/v1/models/{name}:predict"
    requests = []
    for prompt in PROMPTS:
        body = json.dumps({"instances": [prompt]}).encode()
        requests.append(f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\n"
                        f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    latencies, errors = [], []

    async def client(seed, until):
        rng = random.Random(seed)
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        try:
            while time.perf_counter() < until:
                start = time.perf_counter()
                writer.write(rng.choice(requests))
                head = await reader.readuntil(b"\r\n\r\n")
                length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
                body = await reader.readexactly(int(length[1])) if length else b""
                if not head.startswith(b"HTTP/1.1 200") or not json.loads(body)["predictions"][0]["words"]:
                    errors.append(f"{head[:12]!r}: {body[:200]!r}")
                    continue
                latencies.append(time.perf_counter() - start)
        except Exception as e:  # a refused or broken connection counts as an error
            errors.append(repr(e))
        finally:
            writer.close()

    await client(-1, time.perf_counter() + 0.5)  # first a moment alone: the first model calls are not measured
    latencies.clear()
    began = time.perf_counter()
    await asyncio.gather(*(client(i, began + seconds) for i in range(clients)))
    return latencies, errors, time.perf_counter() - began


async def load(url, name, clients, seconds, slow=None):
    """The normal clients' latencies, errors and elapsed time, and what the hostile mix got.

    With ``slow`` (a number, 0 included) the hostile mix runs beside, in its
    own process: its event loop must not slow down the normal clients' one.
    """
    import multiprocessing

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

    context = multiprocessing.get_context("spawn")
    stop, results = context.Event(), context.Queue()
    attack = None if slow is None else context.Process(target=hostile, args=(endpoint, slow, stop, results))
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        # One request first, so the first model call is not in the measurement.
        async with session.post(endpoint, json={"instances": ["warm up"]}) as r:
            await r.read()
        if attack:
            attack.start()
            await asyncio.sleep(3.0)  # let it start and the slow clients connect
        began = time.perf_counter()
        deadline = began + seconds
        await asyncio.gather(*(client(session, i) for i in range(clients)))
        elapsed = time.perf_counter() - began
    outcomes = {}
    if attack:
        stop.set()
        outcomes = results.get(timeout=60)
        attack.join(timeout=60)
    return latencies, errors, elapsed, outcomes


def hostile(endpoint, slow, stop, results):
    """The hostile mix until ``stop`` is set, then its outcomes (counts by kind and answer) to ``results``.

    ``slow`` connections send a request head and then trickle the body, a
    byte a second, reconnecting a second after the server closes them; one
    client each loops on an oversized body, too many instances and JSON nested
    100,000 deep.
    """
    import aiohttp

    raise_open_files()
    outcomes = collections.Counter()
    parts = urlsplit(endpoint)
    head = (f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\n"
            "Content-Length: 100000\r\n\r\n").encode()

    async def slow_client():
        while True:
            try:
                reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
                writer.write(head)
                while not reader.at_eof():
                    writer.write(b"[")
                    await writer.drain()
                    try:
                        answer = await asyncio.wait_for(reader.read(65536), 1.0)
                        if answer.startswith(b"HTTP/1.1 "):
                            outcomes[f"slow: {answer[9:12].decode()}"] += 1
                    except asyncio.TimeoutError:
                        pass
                writer.close()
            except OSError:
                pass
            outcomes["slow: closed by the server"] += 1
            await asyncio.sleep(1.0)

    async def refused(session, kind, body):
        while True:
            try:
                async with session.post(endpoint, data=body, headers=JSON) as r:
                    await r.read()
                    outcomes[f"{kind}: {r.status}"] += 1
            except aiohttp.ClientError as e:
                outcomes[f"{kind}: {type(e).__name__}"] += 1

    async def attack():
        bodies = {"oversized": b'{"instances": ["' + b"the " * 300_000 + b'"]}',
                  "too many instances": json.dumps({"instances": ["the cat"] * 1000}).encode(),
                  "nested": b"[" * 100_000}
        async with aiohttp.ClientSession() as session:
            tasks = [asyncio.create_task(slow_client()) for _ in range(slow)]
            tasks += [asyncio.create_task(refused(session, kind, body)) for kind, body in bodies.items()]
            while not stop.is_set():
                await asyncio.sleep(0.1)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(attack())
    results.put(dict(outcomes))


def raise_open_files():
    """The soft open-file limit up to the hard one: the slow clients need a socket each."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def report(title, latencies, errors, elapsed, clients):
    """Print one run's figures; return them as a row of the results table."""
    latencies.sort()
    ms = [x * 1000 for x in latencies]
    print(f"{title}: {clients} clients for {elapsed:.1f} s: {len(ms)} requests")
    row = [title, clients, round(elapsed, 1), len(ms), None, None, None, len(errors)]
    if ms:
        p99 = ms[min(len(ms) - 1, int(0.99 * len(ms)))]
        row[4:7] = len(ms) / elapsed, statistics.median(ms), p99
        print(f"  throughput  {len(ms) / elapsed:,.0f} requests/s")
        print(f"  latency     p50 {statistics.median(ms):.1f} ms, p99 {p99:.1f} ms, max {ms[-1]:.1f} ms")
    print(f"  errors      {len(errors)}" + (f" (first: {errors[0]})" if errors else ""))
    return row


def wait_values(text):
    try:
        waits = [float(w) for w in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, got {text!r}") from None
    if not waits or any(not 0 <= w < 30_000 for w in waits):
        raise argparse.ArgumentTypeError(f"each wait must be in [0, 30000) ms, got {text!r}")
    return waits


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", help="a trained model folder (default: train a tiny one)")
    parser.add_argument("--seconds", type=float, default=10.0,
                        help="length of each load (default: 10)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (default: 8)")
    parser.add_argument("--slow", type=int, default=2000,
                        help="slow clients in the hostile mix (default: 2000)")
    parser.add_argument("--batch-wait-ms", type=wait_values, default=[0.0, 0.5, 1.0, 2.0],
                        help="the serve --batch-wait-ms values to compare, a server each "
                        "(default: 0,0.5,1,2)")
    record.add_argument(parser)
    args = parser.parse_args()
    from lm_app.serve.limits import DEFAULT_BATCH_WAIT_MS

    waits, codes = [], []
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(args.model_dir) if args.model_dir else train_tiny(Path(tmp))
        for wait in args.batch_wait_ms:
            server = ServerProcess(model_dir, "lm", "--batch-wait-ms", wait)
            try:
                run = asyncio.run(raw_load(server.url, "lm", args.clients, args.seconds))
            finally:
                codes.append(server.stop())
            waits.append((wait, run, server.mean_batch()))
        server = ServerProcess(model_dir, "lm")
        try:
            *alone, _ = asyncio.run(load(server.url, "lm", args.clients, args.seconds))
            *beside, outcomes = asyncio.run(load(server.url, "lm", args.clients, args.seconds, args.slow))
        finally:
            codes.append(server.stop())
    print(f"server on {server.url}")
    wait_rows = [[wait, *report(f"raw clients, --batch-wait-ms {wait:g}", *run, args.clients)[1:],
                  mean_batch] for wait, run, mean_batch in waits]
    for wait, *_, mean_batch in wait_rows:
        print(f"  --batch-wait-ms {wait:g}: mean batch {mean_batch:.2f} texts per model call")
    rows = [report("aiohttp clients, normal load alone", *alone, args.clients),
            report(f"aiohttp clients, normal load beside the hostile mix ({args.slow} slow clients, "
                   "oversized, too many instances, nested)", *beside, args.clients)]
    hostile = ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items()))
    print("  hostile     " + hostile)
    print(f"server      {server.lines[-1]} (exit code {codes[-1]})")
    record.save("serve", [
        record.table("the batching wait: raw clients (one prompt per request, one request at a time each), "
                     "a server per wait", ["batch wait ms", "clients", "seconds", "requests", "requests/s",
                                           "p50 ms", "p99 ms", "errors", "mean batch"], wait_rows),
        record.table(f"aiohttp clients (one prompt per request, one request at a time each), "
                     f"--batch-wait-ms {DEFAULT_BATCH_WAIT_MS:g} (the default)",
                     ["run", "clients", "seconds", "requests", "requests/s", "p50 ms", "p99 ms", "errors"], rows)],
        {"hostile clients got": hostile, "server": server.lines[-1]}, results=args.results)
    ok = all(row[4] is not None and row[7] == 0 for row in wait_rows + rows)
    return 0 if ok and all(code in (0, -signal.SIGTERM) for code in codes) else 1


if __name__ == "__main__":
    sys.exit(main())

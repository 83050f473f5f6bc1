"""``serve``: the exported SavedModel behind TensorFlow Serving's REST predict API.

Clients written for TensorFlow Serving work unchanged (if they send JSON as
``application/json``)::

    POST /v1/models/<name>[/versions/<n>]:predict   {"instances": [...]} or {"inputs": [...]}
    GET  /v1/models/<name>[/versions/<n>]           the model status
    GET  /v1/models/<name>[/versions/<n>]/metadata  the serving signature

Only the SavedModel is used (through :mod:`lm_app.predict`), never the training
code, so this serves whatever ``tf.saved_model.load`` can read.  The responses
carry ``words`` and ``probs`` (and ``continuation`` and ``log_prob`` for a
seq2seq model), not the whole ``probabilities`` vector, so they stay small.

Concurrency: the model runs in one worker thread, never on the event loop.
Requests that arrive while it is busy wait in a queue, and the next call takes
all of them at once (up to ``MAX_BATCH`` texts) as one batch.  An idle server
therefore answers at once, and a busy one does one model call per round
instead of one per request; each request gets back exactly its own rows.

Hostile or heavy load: the work of one request is bounded (``--max-instances``
texts, cut into model calls of at most ``MAX_BATCH``), the queue of texts
waiting for the model is bounded (503 when full), every request has a deadline
(504), a body must arrive within ``--body-timeout`` (408) and a connection
without a request is closed after ``--idle-timeout``.  At ``--max-connections``
a new connection closes the one that has waited longest without a complete
request, so clients that trickle their bytes cannot lock normal ones out.
Requests must name this server in ``Host`` (no DNS rebinding from a web page)
and POST ``application/json`` (no form or ``text/plain`` POST from a web page).

TensorFlow and aiohttp are imported inside the functions, so ``--help`` stays fast.
"""
import base64
import binascii
import dataclasses
import json
import re

from .config import check_ranges
from .errors import UsageError
from .text import has_words

DEFAULT_NAME = "lm"
DEFAULT_PORT = 8501  # TensorFlow Serving's REST port
DEFAULT_MAX_BODY = 1 << 20
MAX_BATCH = 64  # texts per model call: requests are batched together, or cut, to at most this
DEFAULT_MAX_INSTANCES = 256
DEFAULT_MAX_QUEUE = 1024  # texts waiting for the model
DEFAULT_MAX_CONNECTIONS = 1024
DEFAULT_IDLE_TIMEOUT = 15.0  # seconds a connection may wait without a complete request head
DEFAULT_BODY_TIMEOUT = 10.0  # seconds for the body to arrive once the head has
DEFAULT_DEADLINE = 30.0  # seconds from the complete body to the answer
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")
BACKLOG = 1024  # a burst of connections waits in the kernel, not a second for a SYN retry
SIGNATURE = "serving_default"
INPUT = "text"
SERVED_OUTPUTS = ("words", "probs", "continuation", "log_prob")
VERSION = "1"  # a plain model folder has one version, as TF Serving's <model>/1/

# /v1/models/<name>[/versions/<n>][:<verb> | /metadata], as TensorFlow Serving parses it.
ROUTE = re.compile(r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d+))?"
                   r"(?:(?P<verb>:[A-Za-z]+)|(?P<metadata>/metadata))?$")


class RequestError(Exception):
    """A request TF Serving would refuse: the HTTP status and its ``{"error": ...}`` text."""

    def __init__(self, message, status=400):
        super().__init__(message)
        self.status = status


def _limit(default, metavar, help):
    return dataclasses.field(default=default, metadata={"metavar": metavar, "help": help})


@dataclasses.dataclass
class Limits:
    """What one request, the queue and the connections may take: the ``serve`` flags of the same names."""

    max_body: int = _limit(DEFAULT_MAX_BODY, "BYTES", "larger request bodies are refused with 413")
    max_instances: int = _limit(DEFAULT_MAX_INSTANCES, "N", "more texts in one request are refused with 400")
    max_queue: int = _limit(DEFAULT_MAX_QUEUE, "N",
                            "texts that may wait for the model; more are refused with 503")
    max_connections: int = _limit(DEFAULT_MAX_CONNECTIONS, "N",
                                  "open connections; at the limit a new one closes one that has waited "
                                  "longest without a complete request")
    idle_timeout: float = _limit(DEFAULT_IDLE_TIMEOUT, "SECONDS",
                                 "close a connection that has not sent a complete request head in this time")
    body_timeout: float = _limit(DEFAULT_BODY_TIMEOUT, "SECONDS",
                                 "answer 408 to a request whose body has not arrived in this time")
    deadline: float = _limit(DEFAULT_DEADLINE, "SECONDS",
                             "answer 504 to a request the model has not answered in this time")

    def validate(self):
        check_ranges(self, [(limit.name, getattr(self, limit.name) > 0,
                             "must be a positive integer" if limit.type is int else "must be positive")
                            for limit in dataclasses.fields(self)])
        return self


def run(model_dir, host="127.0.0.1", port=DEFAULT_PORT, name=DEFAULT_NAME, limits=None):
    """Serve ``model_dir`` until SIGINT or SIGTERM: what ``lm_app serve`` runs."""
    if not re.fullmatch(r"[^/:\s]+", name):
        raise UsageError(f"--name must not contain '/', ':' or spaces, got {name!r}")
    limits = dataclasses.replace(limits or Limits()).validate()
    # Take the port first: a port in use fails at once, not after seconds of model loading.
    sock = listen(host, port)
    try:
        from .process import import_tensorflow

        import_tensorflow()
        import asyncio

        from . import predict

        loaded = predict.load_model(model_dir)
        model = ServedModel(loaded, name, model_dir)
        limits.max_connections = open_files_for(limits.max_connections)
        asyncio.run(serve_forever(model, model_dir, sock, host, limits))
    finally:
        sock.close()


def open_files_for(connections):
    """The connection cap the process can hold: raises the soft open-file limit up to the hard one.

    A cap above what the process may open would make ``accept`` fail (and log)
    instead of closing the oldest waiting connection.
    """
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    spare = 64  # the model's files, the listening socket, the log
    if soft != resource.RLIM_INFINITY and soft < connections + spare:
        soft = connections + spare if hard == resource.RLIM_INFINITY else min(hard, connections + spare)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return connections if soft == resource.RLIM_INFINITY else max(1, min(connections, soft - spare))


def listen(host, port):
    """A listening TCP socket on ``host:port`` (port 0: one the OS picks), or a UsageError."""
    import socket

    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as e:
        raise UsageError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # restart at once after a stop
        sock.bind(address)
        sock.listen(BACKLOG)
    except OSError as e:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    return sock


class ServedModel:
    """The loaded signature, its metadata, and a thread-safe batch call."""

    def __init__(self, loaded, name, model_dir=None):
        import tensorflow as tf

        from .predict import model_mode

        self.loaded = loaded  # keeps the signature's resources alive
        self.signature = loaded.signatures[SIGNATURE]
        self.name = name
        self.mode = model_mode(model_dir) if model_dir else "words"
        self.tensor_names = _tensor_names(model_dir) if model_dir else {}
        outputs = self.signature.structured_outputs
        self.outputs = [k for k in SERVED_OUTPUTS if k in outputs]
        signature, served = self.signature, self.outputs

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def answer(texts):
            """Only the outputs the answer carries: the graph drops the rest (context, attention)."""
            out = signature(**{INPUT: texts})
            return {k: out[k] for k in served}

        self.answer = answer

    def __call__(self, texts):
        """One prediction dict per text (run in the worker thread)."""
        import tensorflow as tf

        out = self.answer(tf.constant(texts, tf.string))
        columns = {k: out[k].numpy() for k in self.outputs}
        return [{k: _jsonable(columns[k][row]) for k in self.outputs} for row in range(len(texts))]

    def metadata(self):
        """TF Serving's GetModelMetadata answer, from the loaded signature's structure."""
        _, inputs = self.signature.structured_input_signature
        outputs = self.signature.structured_outputs
        names = self.tensor_names
        signature = {
            "inputs": {k: _tensor_info(v, names.get(("inputs", k), "")) for k, v in inputs.items()},
            "outputs": {k: _tensor_info(v, names.get(("outputs", k), "")) for k, v in outputs.items()},
            "method_name": "tensorflow/serving/predict",
        }
        return {"model_spec": {"name": self.name, "signature_name": "", "version": VERSION},
                "metadata": {"signature_def": {"signature_def": {SIGNATURE: signature}}}}


def _tensor_names(model_dir):
    """The graph tensor names of the serving signature, as saved_model.pb records them.

    The loaded signature knows the keys, dtypes and shapes but not these names,
    which TF Serving's metadata also reports; {} if the file cannot be read.
    """
    from pathlib import Path

    from tensorflow.core.protobuf import saved_model_pb2

    try:
        saved = saved_model_pb2.SavedModel.FromString((Path(model_dir) / "saved_model.pb").read_bytes())
        signature = saved.meta_graphs[0].signature_def[SIGNATURE]
    except Exception:  # unreadable here but loadable: the names are a nicety
        return {}
    return {**{("inputs", k): v.name for k, v in signature.inputs.items()},
            **{("outputs", k): v.name for k, v in signature.outputs.items()}}


def _tensor_info(spec, name):
    from tensorflow.core.framework import types_pb2

    shape = spec.shape
    dims = [] if shape.rank is None else [{"size": str(-1 if d is None else d), "name": ""}
                                          for d in shape.as_list()]
    return {"dtype": types_pb2.DataType.Name(spec.dtype.as_datatype_enum),
            "tensor_shape": {"dim": dims, "unknown_rank": shape.rank is None}, "name": name}


def _jsonable(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def _text(value, where):
    """One instance as bytes: a string, or TF Serving's ``{"b64": ...}`` for binary data."""
    if isinstance(value, str):
        return value.encode("utf-8", errors="replace")
    if isinstance(value, dict) and set(value) == {"b64"} and isinstance(value["b64"], str):
        try:
            return base64.b64decode(value["b64"], validate=True)
        except (binascii.Error, ValueError):
            raise RequestError(f"{where}: 'b64' is not valid base64") from None
    if isinstance(value, list):
        raise RequestError(f"{where}: expected one string per instance (input '{INPUT}' has "
                           f"shape [-1]), got a list")
    raise RequestError(f"{where}: expected a string, got {type(value).__name__}")


def parse_body(body):
    """The JSON of a request body; anything that is not JSON (or is too deep to parse) is a 400."""
    try:
        return json.loads(body)
    except json.JSONDecodeError as e:
        raise RequestError(f"JSON Parse error: {e.msg} at offset: {e.pos}") from None
    except UnicodeDecodeError:
        raise RequestError("JSON Parse error: the body is not UTF-8") from None
    except RecursionError:
        raise RequestError("JSON Parse error: the body is nested too deeply") from None
    except ValueError:  # an integer of more digits than Python converts
        raise RequestError("JSON Parse error: a number has too many digits") from None


def parse_request(payload, max_instances=DEFAULT_MAX_INSTANCES, mode="words"):
    """The texts of a predict request and whether it is columnar (``inputs``) or row (``instances``).

    Every text must keep a word after the model's normalisation (``mode``), the
    rule ``predict`` applies too: without one the model would answer from an
    empty context.
    """
    if not isinstance(payload, dict):
        raise RequestError("JSON Value: the request body is not an object")
    signature = payload.get("signature_name", SIGNATURE) or SIGNATURE
    if signature != SIGNATURE:
        raise RequestError(f'Serving signature name: "{signature}" not found in signature def')
    if "instances" in payload and "inputs" in payload:
        raise RequestError("Not allowed to mix 'instances' and 'inputs' in one request")
    if "instances" in payload:
        key, items = "instances", payload["instances"]
        if not isinstance(items, list):
            raise RequestError("'instances' must be a list")
    elif "inputs" in payload:
        key, items = "inputs", payload["inputs"]
        if isinstance(items, dict) and "b64" not in items:
            if set(items) != {INPUT}:
                raise RequestError(f"'inputs': expected the one input '{INPUT}', got "
                                   f"{sorted(items) or 'none'}")
            items = items[INPUT]
        if not isinstance(items, list):
            raise RequestError(f"'inputs': input '{INPUT}' has shape [-1]: send a list of strings")
    else:
        raise RequestError("Missing 'inputs' or 'instances' key")
    if not items:
        raise RequestError(f"'{key}' is empty")
    if len(items) > max_instances:
        raise RequestError(f"'{key}' holds {len(items)} texts, over the limit of {max_instances} "
                           "per request (--max-instances): send them in several requests")
    texts = []
    for i, item in enumerate(items):
        where = f"{key}[{i}]"
        if key == "instances" and isinstance(item, dict) and "b64" not in item:
            if set(item) != {INPUT}:
                raise RequestError(f"{where}: expected the one input '{INPUT}', got {sorted(item) or 'none'}")
            item = item[INPUT]
        texts.append(_text(item, where))
        if not has_words(texts[-1].decode("utf-8", errors="replace"), mode):
            raise RequestError(f"{where}: no words are left after normalisation")
    return texts, key == "inputs"


class Batcher:
    """Runs the model in one worker thread; requests queued meanwhile share the next call.

    A request of more than ``max_batch`` texts is cut into parts of at most
    ``max_batch``, so no model call is bigger than that whatever arrives.
    """

    def __init__(self, model, max_batch=MAX_BATCH, max_queue=DEFAULT_MAX_QUEUE, deadline=DEFAULT_DEADLINE):
        import asyncio
        from concurrent.futures import ThreadPoolExecutor

        self.model = model
        self.max_batch = max_batch
        self.max_queue = max_queue
        self.deadline = deadline
        self.queue = asyncio.Queue()
        self.waiting = 0  # texts queued, not yet taken by a model call
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")
        self.requests = self.texts = self.calls = 0  # reported at shutdown
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def predict(self, texts):
        """The rows of ``texts``; 503 when the queue is full, 504 past the deadline."""
        import asyncio

        if self.waiting + len(texts) > self.max_queue:
            raise RequestError(f"the server is busy: {self.waiting} texts are waiting for the model "
                               f"(at most {self.max_queue}); try again later", 503)
        loop = asyncio.get_running_loop()
        parts = []
        for start in range(0, len(texts), self.max_batch):
            part = texts[start:start + self.max_batch]
            parts.append(loop.create_future())
            self.queue.put_nowait((part, parts[-1]))
            self.waiting += len(part)
        self.requests += 1
        try:
            # wait_for, not asyncio.timeout: that arrived in Python 3.11, and 3.10 is supported.
            rows = await asyncio.wait_for(asyncio.gather(*parts), self.deadline)
        except asyncio.TimeoutError:
            raise RequestError(f"the model did not answer within the deadline of {self.deadline:g} s",
                               504) from None
        finally:
            for future in parts:  # the parts not run yet are skipped
                future.cancel()
        return [row for part in rows for row in part]

    def _next_batch(self, first):
        """The jobs of the next call, starting with ``first``, and the job left over for the one after."""
        jobs, count = [first], len(first[0])
        while not self.queue.empty():
            job = self.queue.get_nowait()
            if job is None or count + len(job[0]) > self.max_batch:
                return jobs, job
            jobs.append(job)
            count += len(job[0])
        return jobs, ()

    async def _run(self):
        import asyncio

        loop = asyncio.get_running_loop()
        left = ()
        while True:
            job = left if left != () else await self.queue.get()
            if job is None:
                return
            jobs, left = self._next_batch(job)
            self.waiting -= sum(len(texts) for texts, _ in jobs)
            jobs = [job for job in jobs if not job[1].done()]  # done: past its deadline, or the client left
            if not jobs:
                continue
            texts = [t for job_texts, _ in jobs for t in job_texts]
            self.texts += len(texts)
            self.calls += 1
            try:
                rows = await loop.run_in_executor(self.executor, self.model, texts)
            except Exception as e:  # the model failed: every request of the batch hears why
                for _, future in jobs:
                    if not future.done():
                        future.set_exception(e)
                continue
            start = 0
            for job_texts, future in jobs:
                if not future.done():
                    future.set_result(rows[start:start + len(job_texts)])
                start += len(job_texts)

    async def close(self):
        await self.queue.put(None)
        await self.task
        self.executor.shutdown(wait=True)


class Connections:
    """The open connections, at most ``limit``, each in the order it began to wait.

    At the limit a new connection closes the one that has waited longest for
    its first complete request (a slow client, or one that sends nothing);
    failing that, the one idle longest since its last answer.  Only when every
    connection has a request in the works is the new one refused, with a 503.
    Slow clients thus cannot lock normal ones out, and a normal client's
    kept-alive connection is the last to go.
    """

    def __init__(self, limit):
        import collections

        # OrderedDict: a plain dict's first key costs a scan over the keys deleted before it.
        self.limit = limit
        self.fresh = collections.OrderedDict()  # transport -> None, oldest first: no complete request yet
        self.idle = collections.OrderedDict()  # transport -> None, oldest first: answered, waiting again
        self.working = set()

    def admit(self, transport):
        if len(self.fresh) + len(self.idle) + len(self.working) >= self.limit:
            waiting = self.fresh or self.idle
            if not waiting:
                return False
            oldest = next(iter(waiting))
            self.forget(oldest)
            oldest.abort()
        self.fresh[transport] = None
        return True

    def forget(self, transport):
        self.fresh.pop(transport, None)
        self.idle.pop(transport, None)
        self.working.discard(transport)

    def start_work(self, transport):
        """The request on ``transport`` is complete: it may no longer be closed to make room."""
        if transport in self.fresh or transport in self.idle:
            self.forget(transport)
            self.working.add(transport)

    def end_work(self, transport):
        if transport in self.working:
            self.working.discard(transport)
            self.idle[transport] = None


BUSY = json.dumps({"error": "the server has too many connections; try again later"}).encode()
BUSY_RESPONSE = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(BUSY), BUSY))


def counted(protocol_factory, connections):
    """``protocol_factory`` (aiohttp's) behind ``connections``: admitted or answered 503 and closed."""
    import asyncio

    class Counted(asyncio.Protocol):
        def __init__(self):
            self.inner = None
            self.transport = None

        def connection_made(self, transport):
            self.transport = transport
            if not connections.admit(transport):
                transport.write(BUSY_RESPONSE)
                transport.close()
                return
            self.inner = protocol_factory()
            self.inner.connection_made(transport)

        def data_received(self, data):
            if self.inner is not None:
                self.inner.data_received(data)

        def eof_received(self):
            return self.inner.eof_received() if self.inner is not None else None

        def connection_lost(self, exc):
            connections.forget(self.transport)
            if self.inner is not None:
                self.inner.connection_lost(exc)

        def pause_writing(self):
            if self.inner is not None:
                self.inner.pause_writing()

        def resume_writing(self):
            if self.inner is not None:
                self.inner.resume_writing()

    return Counted


def host_names(host, port):
    """The ``Host`` values a request may carry, or None (any) when listening on every address.

    A web page can make a browser send requests to localhost under its own
    domain name (DNS rebinding); such a request names that domain in ``Host``.
    """
    if host in ("0.0.0.0", "::", ""):
        return None
    bound = f"[{host}]" if ":" in host else host
    names = {name.lower() for name in (*LOOPBACK_NAMES, bound)}
    return {f"{name}:{port}" for name in names} | (names if port == 80 else set())


def check_host(request, hosts):
    """Refuse a request for another name than this server's: what a DNS-rebinding page sends."""
    host = request.headers.get("Host", "")  # not request.host: without the header that asks the DNS
    if hosts is not None and host.lower() not in hosts:
        raise RequestError(f"Host {host!r} is not this server's address; use one of "
                           f"{', '.join(sorted(hosts))}")


def check_json(request):
    """Refuse a POST a web page can send without asking (a form, ``text/plain``, no type)."""
    if request.content_type != "application/json":
        raise RequestError("Content-Type must be application/json, not "
                           f"{request.headers.get('Content-Type', 'none')!r}", 415)


def make_app(model, limits=None, hosts=None, connections=None):
    """The aiohttp application (no sockets yet; ``serve_forever`` binds it)."""
    import asyncio

    from aiohttp import web

    limits = limits or Limits()
    connections = connections or Connections(limits.max_connections)

    @web.middleware
    async def errors_as_json(request, handler):
        """Every failure in TF Serving's ``{"error": ...}`` form, even aiohttp's own 404/405/413."""
        try:
            return await handler(request)
        except RequestError as e:
            response = web.json_response({"error": str(e)}, status=e.status)
            if e.status == 408:
                response.force_close()  # the rest of the body may still come
            return response
        except web.HTTPException as e:
            if e.status < 400:
                raise
            message = e.text if e.text and not e.text.startswith(f"{e.status}:") else e.reason
            return web.json_response({"error": message}, status=e.status, headers=_allow(e))
        except Exception as e:
            if isinstance(e, ConnectionError) or request.transport is None:
                # The client went away, or was closed for room (aiohttp then says "Connection
                # closed."): nothing to log, nobody to answer.
                return web.Response(status=400)
            # The model failed: one line here, no graph details to the client.
            first = str(e).strip().splitlines()[0] if str(e).strip() else ""
            request.app.logger.error("predict failed: %s: %s", type(e).__name__, first[:300])
            return web.json_response({"error": "the model failed on this request"}, status=500)
        finally:
            connections.end_work(request.transport)

    def resolve(request):
        check_host(request, hosts)
        match = ROUTE.match(request.path)
        if not match:
            raise RequestError(f"Malformed request: {request.method} {request.path}", 404)
        name, version = match["name"], match["version"]
        if name != model.name or version not in (None, VERSION):
            spec = f"Specific({name}, {version})" if version else f"Latest({name})"
            raise RequestError(f"Servable not found for request: {spec}", 404)
        return match

    async def handle_get(request):
        match = resolve(request)
        if match["verb"]:
            raise RequestError(f"Malformed request: GET {request.path} (use POST)", 405)
        if match["metadata"]:
            return web.json_response(model.metadata())
        return web.json_response({"model_version_status": [
            {"version": VERSION, "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]})

    async def handle_post(request):
        match = resolve(request)
        if match["verb"] is None:
            raise RequestError(f"Malformed request: POST {request.path} (use GET, or POST to "
                               f"...:predict)", 405)
        if match["verb"] != ":predict":
            if match["verb"] in (":classify", ":regress"):
                raise RequestError(f"this model has only the predict signature, not {match['verb'][1:]}")
            raise RequestError(f"Malformed request: POST {request.path}", 404)
        check_json(request)
        if request.content_length is not None and request.content_length > limits.max_body:
            raise RequestError(f"request body of {request.content_length} bytes is over the "
                               f"limit of {limits.max_body} bytes", 413)
        try:
            # aiohttp stops a chunked body at client_max_size
            body = await asyncio.wait_for(request.read(), limits.body_timeout)
        except web.HTTPRequestEntityTooLarge:
            raise RequestError(f"request body is over the limit of {limits.max_body} bytes", 413) from None
        except asyncio.TimeoutError:
            raise RequestError(f"the request body did not arrive within {limits.body_timeout:g} s",
                               408) from None
        except web.RequestPayloadError as e:  # a bad chunk or content encoding
            cause = e.__cause__ or e
            raise RequestError("the request body cannot be read: "
                               f"{getattr(cause, 'message', '') or type(cause).__name__}") from None
        connections.start_work(request.transport)
        texts, columnar = parse_request(parse_body(body), limits.max_instances, model.mode)
        rows = await request.app["batcher"].predict(texts)
        if columnar:
            return web.json_response({"outputs": {k: [row[k] for row in rows] for k in model.outputs}})
        return web.json_response({"predictions": rows})

    async def start_batcher(app):
        app["batcher"] = Batcher(model, MAX_BATCH, limits.max_queue, limits.deadline)

    async def stop_batcher(app):
        batcher = app["batcher"]
        await batcher.close()
        print(f"served {batcher.requests} request(s), {batcher.texts} text(s), in {batcher.calls} "
              "model call(s)", flush=True)

    app = web.Application(client_max_size=limits.max_body, middlewares=[errors_as_json])
    app.router.add_get("/{path:.*}", handle_get)
    app.router.add_post("/{path:.*}", handle_post)
    app.on_startup.append(start_batcher)
    app.on_cleanup.append(stop_batcher)
    return app


def _allow(e):
    allow = getattr(e, "headers", {}).get("Allow") if e.status == 405 else None
    return {"Allow": allow} if allow else None


def quiet_client_errors(record):
    """A filter of aiohttp's log: nothing for a client's malformed request (it had its 400), one line
    for anything else, never a traceback."""
    from aiohttp import web
    from aiohttp.http_exceptions import HttpProcessingError

    exc = record.exc_info[1] if record.exc_info else None
    if exc is None:
        return True
    if isinstance(exc, (HttpProcessingError, web.RequestPayloadError, ConnectionError)):
        return False
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    record.msg, record.args = f"{record.getMessage()}: {type(exc).__name__}: {first[:300]}", ()
    record.exc_info = record.exc_text = None
    return True


async def serve_forever(model, model_dir, sock, host, limits=None):
    """Serve on ``sock`` until SIGINT or SIGTERM, then finish the requests in flight and return."""
    import asyncio
    import logging
    import signal

    from aiohttp import web

    limits = limits or Limits()
    logging.getLogger("aiohttp.server").addFilter(quiet_client_errors)
    port = sock.getsockname()[1]
    connections = Connections(limits.max_connections)
    app = make_app(model, limits, host_names(host, port), connections)
    runner = web.AppRunner(app, access_log=None, keepalive_timeout=limits.idle_timeout,
                           shutdown_timeout=10.0)
    await runner.setup()
    server = None
    try:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(counted(runner.server, connections), sock=sock,
                                      backlog=BACKLOG)
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        shown = f"[{host}]" if ":" in host else host
        print(f'serving {model_dir} as "{model.name}" on http://{shown}:{port}', flush=True)
        await stop.wait()
        print("stopping: finishing the requests in flight", flush=True)
    finally:
        if server is not None:
            server.close()  # no new connections; the open ones finish below
        await runner.cleanup()

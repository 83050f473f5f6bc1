"""``serve``: the exported SavedModel behind TensorFlow Serving's REST predict API.

Clients written for TensorFlow Serving work unchanged::

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

TensorFlow and aiohttp are imported inside the functions, so ``--help`` stays fast.
"""
import base64
import binascii
import json
import re

from .errors import UsageError

DEFAULT_NAME = "lm"
DEFAULT_PORT = 8501  # TensorFlow Serving's REST port
DEFAULT_MAX_BODY = 1 << 20
MAX_BATCH = 64  # texts per model call when requests are batched together
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


def port_number(value):
    import argparse

    n = int(value)
    if not 0 <= n <= 65535:
        raise argparse.ArgumentTypeError(f"must be in 0..65535 (0: any free port), got {value}")
    return n


def add_parser(sub, model_dir_default="saved_models/lm"):
    """The ``serve`` sub-command (called by ``cli.make_parser``)."""
    from .cli import positive_int

    p = sub.add_parser("serve", help="serve the SavedModel over TensorFlow Serving's REST API",
                       description="Serve the exported SavedModel on TensorFlow Serving's REST "
                       "predict API: POST /v1/models/NAME:predict with {\"instances\": [text, "
                       "...]} or {\"inputs\": [...]}; GET /v1/models/NAME for its status and "
                       "/v1/models/NAME/metadata for its signature. Concurrent requests are "
                       "batched into one model call. Ctrl-C or SIGTERM stops it cleanly.")
    p.add_argument("--model-dir", default=model_dir_default, help="exported model (default: %(default)s)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on; 0.0.0.0 exposes it to the network (default: %(default)s)")
    p.add_argument("--port", type=port_number, default=DEFAULT_PORT,
                   help="TCP port, 0 = any free one (default: %(default)s)")
    p.add_argument("--name", default=DEFAULT_NAME,
                   help="model name in the URLs, /v1/models/NAME (default: %(default)s)")
    p.add_argument("--max-body", type=positive_int, default=DEFAULT_MAX_BODY, metavar="BYTES",
                   help="larger request bodies are refused with 413 (default: %(default)s)")
    p.set_defaults(func=cmd_serve)
    return p


def cmd_serve(args):
    if not re.fullmatch(r"[^/:\s]+", args.name):
        raise UsageError(f"--name must not contain '/', ':' or spaces, got {args.name!r}")
    # Take the port first: a port in use fails at once, not after seconds of model loading.
    sock = listen(args.host, args.port)
    try:
        from .cli import import_tensorflow

        import_tensorflow()
        import asyncio

        from . import predict

        loaded = predict.load_model(args.model_dir)
        model = ServedModel(loaded, args.name, args.model_dir)
        asyncio.run(serve_forever(model, args.model_dir, sock, args.host, args.max_body))
    finally:
        sock.close()


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
        sock.listen(128)
    except OSError as e:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    return sock


class ServedModel:
    """The loaded signature, its metadata, and a thread-safe batch call."""

    def __init__(self, loaded, name, model_dir=None):
        self.loaded = loaded  # keeps the signature's resources alive
        self.signature = loaded.signatures[SIGNATURE]
        self.name = name
        self.tensor_names = _tensor_names(model_dir) if model_dir else {}
        outputs = self.signature.structured_outputs
        self.outputs = [k for k in SERVED_OUTPUTS if k in outputs]

    def __call__(self, texts):
        """One prediction dict per text (run in the worker thread)."""
        import tensorflow as tf

        out = self.signature(**{INPUT: tf.constant(texts, tf.string)})
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


def parse_request(payload):
    """The texts of a predict request and whether it is columnar (``inputs``) or row (``instances``)."""
    if not isinstance(payload, dict):
        raise RequestError("JSON Value: the request body is not an object")
    signature = payload.get("signature_name", SIGNATURE) or SIGNATURE
    if signature != SIGNATURE:
        raise RequestError(f'Serving signature name: "{signature}" not found in signature def')
    if "instances" in payload and "inputs" in payload:
        raise RequestError("Not allowed to mix 'instances' and 'inputs' in one request")
    if "instances" in payload:
        instances = payload["instances"]
        if not isinstance(instances, list):
            raise RequestError("'instances' must be a list")
        if not instances:
            raise RequestError("'instances' is empty")
        texts = []
        for i, item in enumerate(instances):
            if isinstance(item, dict) and "b64" not in item:
                unknown = set(item) - {INPUT}
                if unknown or INPUT not in item:
                    raise RequestError(f"instances[{i}]: expected the one input '{INPUT}', got "
                                       f"{sorted(item) or 'none'}")
                item = item[INPUT]
            texts.append(_text(item, f"instances[{i}]"))
        return texts, False
    if "inputs" in payload:
        inputs = payload["inputs"]
        if isinstance(inputs, dict) and "b64" not in inputs:
            if set(inputs) != {INPUT}:
                raise RequestError(f"'inputs': expected the one input '{INPUT}', got "
                                   f"{sorted(inputs) or 'none'}")
            inputs = inputs[INPUT]
        if not isinstance(inputs, list):
            raise RequestError(f"'inputs': input '{INPUT}' has shape [-1]: send a list of strings")
        if not inputs:
            raise RequestError("'inputs' is empty")
        return [_text(item, f"inputs[{i}]") for i, item in enumerate(inputs)], True
    raise RequestError("Missing 'inputs' or 'instances' key")


class Batcher:
    """Runs the model in one worker thread; requests queued meanwhile share the next call."""

    def __init__(self, model, max_batch=MAX_BATCH):
        import asyncio
        from concurrent.futures import ThreadPoolExecutor

        self.model = model
        self.max_batch = max_batch
        self.queue = asyncio.Queue()
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")
        self.requests = self.texts = self.calls = 0  # reported at shutdown
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def predict(self, texts):
        import asyncio

        future = asyncio.get_running_loop().create_future()
        await self.queue.put((texts, future))
        return await future

    async def _run(self):
        import asyncio

        loop = asyncio.get_running_loop()
        while True:
            job = await self.queue.get()
            if job is None:
                return
            jobs, count = [job], len(job[0])
            while count < self.max_batch and not self.queue.empty():
                job = self.queue.get_nowait()
                if job is None:  # stop after this batch
                    self.queue.put_nowait(None)
                    break
                jobs.append(job)
                count += len(job[0])
            texts = [t for job_texts, _ in jobs for t in job_texts]
            self.requests += len(jobs)
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
                if not future.done():  # done = the client went away
                    future.set_result(rows[start:start + len(job_texts)])
                start += len(job_texts)

    async def close(self):
        await self.queue.put(None)
        await self.task
        self.executor.shutdown(wait=True)


def make_app(model, max_body=DEFAULT_MAX_BODY):
    """The aiohttp application (no sockets yet; ``serve_forever`` binds it)."""
    from aiohttp import web

    @web.middleware
    async def errors_as_json(request, handler):
        """Every failure in TF Serving's ``{"error": ...}`` form, even aiohttp's own 404/405/413."""
        try:
            return await handler(request)
        except RequestError as e:
            return web.json_response({"error": str(e)}, status=e.status)
        except web.HTTPException as e:
            if e.status < 400:
                raise
            message = e.text if e.text and not e.text.startswith(f"{e.status}:") else e.reason
            return web.json_response({"error": message}, status=e.status, headers=_allow(e))
        except Exception as e:
            request.app.logger.exception("predict failed")
            return web.json_response({"error": f"{type(e).__name__}: {e}"}, status=500)

    def resolve(request):
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
        if request.content_length is not None and request.content_length > max_body:
            raise RequestError(f"request body of {request.content_length} bytes is over the "
                               f"limit of {max_body} bytes", 413)
        try:
            body = await request.read()  # aiohttp stops a chunked body at client_max_size
        except web.HTTPRequestEntityTooLarge:
            raise RequestError(f"request body is over the limit of {max_body} bytes", 413) from None
        try:
            payload = json.loads(body)
        except json.JSONDecodeError as e:
            raise RequestError(f"JSON Parse error: {e.msg} at offset: {e.pos}") from None
        except UnicodeDecodeError:
            raise RequestError("JSON Parse error: the body is not UTF-8") from None
        texts, columnar = parse_request(payload)
        rows = await request.app["batcher"].predict(texts)
        if columnar:
            return web.json_response({"outputs": {k: [row[k] for row in rows] for k in model.outputs}})
        return web.json_response({"predictions": rows})

    async def start_batcher(app):
        app["batcher"] = Batcher(model)

    async def stop_batcher(app):
        batcher = app["batcher"]
        await batcher.close()
        print(f"served {batcher.requests} request(s), {batcher.texts} text(s), in {batcher.calls} "
              "model call(s)", flush=True)

    app = web.Application(client_max_size=max_body, middlewares=[errors_as_json])
    app.router.add_get("/{path:.*}", handle_get)
    app.router.add_post("/{path:.*}", handle_post)
    app.on_startup.append(start_batcher)
    app.on_cleanup.append(stop_batcher)
    return app


def _allow(e):
    allow = getattr(e, "headers", {}).get("Allow") if e.status == 405 else None
    return {"Allow": allow} if allow else None


async def serve_forever(model, model_dir, sock, host, max_body=DEFAULT_MAX_BODY):
    """Serve on ``sock`` until SIGINT or SIGTERM, then finish the requests in flight and return."""
    import asyncio
    import signal

    from aiohttp import web

    runner = web.AppRunner(make_app(model, max_body), access_log=None)
    await runner.setup()
    try:
        await web.SockSite(runner, sock, shutdown_timeout=10.0).start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        shown = f"[{host}]" if ":" in host else host
        print(f'serving {model_dir} as "{model.name}" on http://{shown}:{sock.getsockname()[1]}',
              flush=True)
        await stop.wait()
        print("stopping: finishing the requests in flight", flush=True)
    finally:
        await runner.cleanup()

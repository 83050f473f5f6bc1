"""The aiohttp application: the routes, errors in TF Serving's form, and serving until a signal."""
from .batcher import Batcher
from .connections import BACKLOG, Connections, check_host, check_json, counted, host_names
from .limits import MAX_BATCH, Limits
from .model import VERSION
from .requests import ROUTE, RequestError, parse_body, parse_request


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
            # aiohttp stops a chunked body at client_max_size. A body already here needs no
            # timeout (wait_for would wrap the read in a task).
            body = await (request.read() if request.content.is_eof()
                          else asyncio.wait_for(request.read(), limits.body_timeout))
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
        texts, columnar = parse_request(parse_body(body), limits.max_instances, model.mode, model.input_name)
        rows = await request.app["batcher"].predict(texts)
        if columnar:
            return web.json_response({"outputs": {k: [row[k] for row in rows] for k in model.outputs}})
        return web.json_response({"predictions": rows})

    async def start_batcher(app):
        app["batcher"] = Batcher(model, MAX_BATCH, limits.max_queue, limits.deadline, limits.batch_wait_ms / 1000)

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

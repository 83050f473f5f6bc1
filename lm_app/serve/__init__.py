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

The modules, one idea each: :mod:`.requests` (bodies and URLs into texts),
:mod:`.model` (the loaded signature), :mod:`.batcher` (the model's worker
thread), :mod:`.connections` (who may connect and ask), :mod:`.limits` (the
bounds above), :mod:`.app` (the routes and the serving loop); this one holds
the ``serve`` command.  TensorFlow and aiohttp are imported inside the
functions, so ``--help`` stays fast.
"""
import dataclasses
import re

from ..errors import UsageError
from .app import serve_forever
from .connections import listen, open_files_for
from .limits import Limits
from .model import ServedModel

DEFAULT_NAME = "lm"
DEFAULT_PORT = 8501  # TensorFlow Serving's REST port


def port_number(value):
    import argparse

    n = int(value)
    if not 0 <= n <= 65535:
        raise argparse.ArgumentTypeError(f"must be in 0..65535 (0: any free port), got {value}")
    return n


def add_parser(sub, model_dir_default="saved_models/lm"):
    """The ``serve`` sub-command (called by ``cli.make_parser``)."""
    from ..process import positive_float, positive_int

    p = sub.add_parser("serve", help="serve the SavedModel over TensorFlow Serving's REST API",
                       description="Serve the exported SavedModel on TensorFlow Serving's REST "
                       "predict API: POST /v1/models/NAME:predict with {\"instances\": [text, "
                       "...]} or {\"inputs\": [...]}; GET /v1/models/NAME for its status and "
                       "/v1/models/NAME/metadata for its signature. Concurrent requests are "
                       "batched into one model call. Requests must name this server in Host "
                       "(localhost, 127.0.0.1, [::1] or --host, with the port) and POST "
                       "application/json, so a web page cannot use it. Ctrl-C or SIGTERM stops it "
                       "cleanly.")
    p.add_argument("--model-dir", default=model_dir_default, help="exported model (default: %(default)s)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on; 0.0.0.0 exposes it to the network (default: %(default)s)")
    p.add_argument("--port", type=port_number, default=DEFAULT_PORT,
                   help="TCP port, 0 = any free one (default: %(default)s)")
    p.add_argument("--name", default=DEFAULT_NAME,
                   help="model name in the URLs, /v1/models/NAME (default: %(default)s)")
    for limit in dataclasses.fields(Limits):
        p.add_argument("--" + limit.name.replace("_", "-"), default=limit.default,
                       type=positive_int if limit.type is int else positive_float,
                       metavar=limit.metadata["metavar"],
                       help=f"{limit.metadata['help']} (default: %(default)s)")
    p.set_defaults(func=cmd_serve)
    return p


def cmd_serve(args):
    if not re.fullmatch(r"[^/:\s]+", args.name):
        raise UsageError(f"--name must not contain '/', ':' or spaces, got {args.name!r}")
    # Take the port first: a port in use fails at once, not after seconds of model loading.
    sock = listen(args.host, args.port)
    try:
        from ..process import import_tensorflow

        import_tensorflow()
        import asyncio

        from .. import predict

        loaded = predict.load_model(args.model_dir)
        model = ServedModel(loaded, args.name, args.model_dir)
        limits = Limits(**{limit.name: getattr(args, limit.name) for limit in dataclasses.fields(Limits)})
        limits.max_connections = open_files_for(limits.max_connections)
        asyncio.run(serve_forever(model, args.model_dir, sock, args.host, limits))
    finally:
        sock.close()


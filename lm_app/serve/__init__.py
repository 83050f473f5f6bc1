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

Concurrency: the model runs in a thread of its own, never on the event loop.
Requests that arrive while it is busy wait in a queue, and the next call takes
all of them at once (up to ``MAX_BATCH`` texts) as one batch, after waiting
``--batch-wait-ms`` for others to join it.  A busy server thus does one model
call per round instead of one per request; each request gets back exactly its
own rows.

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
:func:`run`, what the ``serve`` command runs.  TensorFlow and aiohttp are imported inside the
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


def run(model_dir, host="127.0.0.1", port=DEFAULT_PORT, name=DEFAULT_NAME, limits=None):
    """Serve ``model_dir`` until SIGINT or SIGTERM: what ``lm_app serve`` runs."""
    if not re.fullmatch(r"[^/:\s]+", name):
        raise UsageError(f"--name must not contain '/', ':' or spaces, got {name!r}")
    limits = dataclasses.replace(limits or Limits()).validate()
    # Take the port first: a port in use fails at once, not after seconds of model loading.
    sock = listen(host, port)
    try:
        from ..process import import_tensorflow

        import_tensorflow()
        import asyncio

        from .. import predict

        loaded = predict.load_model(model_dir)
        model = ServedModel(loaded, name, model_dir)
        limits.max_connections = open_files_for(limits.max_connections)
        asyncio.run(serve_forever(model, model_dir, sock, host, limits))
    finally:
        sock.close()

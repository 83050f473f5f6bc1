"""Who may talk to the server: the listening socket, the connection cap, and the Host and Content-Type rules.

At ``--max-connections`` a new connection closes the one that has waited
longest without a complete request, so clients that trickle their bytes cannot
lock normal ones out.  Requests must name this server in ``Host`` (no DNS
rebinding from a web page) and POST ``application/json`` (no form or
``text/plain`` POST from a web page).
"""
import json

from ..errors import UsageError
from .requests import RequestError

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")
BACKLOG = 1024  # a burst of connections waits in the kernel, not a second for a SYN retry


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


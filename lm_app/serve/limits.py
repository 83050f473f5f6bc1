"""What the server allows one request, the queue and the connections: the defaults of the ``serve`` flags."""
import dataclasses

from ..config import check_ranges

DEFAULT_MAX_BODY = 1 << 20
MAX_BATCH = 64  # texts per model call: requests are batched together, or cut, to at most this
DEFAULT_MAX_INSTANCES = 256
DEFAULT_MAX_QUEUE = 1024  # texts waiting for the model
DEFAULT_MAX_CONNECTIONS = 1024
DEFAULT_IDLE_TIMEOUT = 15.0  # seconds a connection may wait without a complete request head
DEFAULT_BODY_TIMEOUT = 10.0  # seconds for the body to arrive once the head has
DEFAULT_DEADLINE = 30.0  # seconds from the complete body to the answer
DEFAULT_BATCH_WAIT_MS = 0.5  # chosen from the rows of bench/serve.py, which prints the trade-off of each wait


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
    batch_wait_ms: float = _limit(DEFAULT_BATCH_WAIT_MS, "MS",
                                  "after the first text of a model call, wait this long for others to share "
                                  "it (fewer, larger calls; each request waits longer); 0: take only those "
                                  "already queued")

    def validate(self):
        check_ranges(self, [(limit.name, getattr(self, limit.name) > 0,
                             "must be a positive integer" if limit.type is int else "must be positive")
                            for limit in dataclasses.fields(self) if limit.name != "batch_wait_ms"])
        check_ranges(self, [("batch_wait_ms", 0 <= self.batch_wait_ms < self.deadline * 1000,
                             "must be 0 or more and shorter than --deadline")])
        return self

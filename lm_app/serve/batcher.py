"""The model's own thread: requests that wait while it is busy share its next call."""
from .limits import DEFAULT_BATCH_WAIT_MS, DEFAULT_DEADLINE, DEFAULT_MAX_QUEUE, MAX_BATCH
from .requests import RequestError


class Batcher:
    """Runs the model in a thread of its own; requests queued meanwhile share the next call.

    The event loop hands texts over under a lock and gets the rows back in one
    wake-up per call, so a request costs no asyncio task and no executor hop.
    After the first text of a call the thread waits up to ``wait`` seconds for
    more (0: none), ending the wait as soon as ``max_batch`` texts are there.
    A request of more than ``max_batch`` texts is cut into parts of at most
    ``max_batch``, so no model call is bigger than that whatever arrives.
    """

    def __init__(self, model, max_batch=MAX_BATCH, max_queue=DEFAULT_MAX_QUEUE, deadline=DEFAULT_DEADLINE,
                 wait=DEFAULT_BATCH_WAIT_MS / 1000):
        import asyncio
        import collections
        import threading

        self.model = model
        self.max_batch = max_batch
        self.max_queue = max_queue
        self.deadline = deadline
        self.wait = wait
        self.loop = asyncio.get_running_loop()
        self.jobs = collections.deque()  # (texts, future), oldest first; None: stop
        self.waiting = 0  # texts queued, not yet taken by a model call
        self.lock = threading.Condition()
        self.requests = self.texts = self.calls = 0  # reported at shutdown
        self.thread = threading.Thread(target=self._work, name="model", daemon=True)
        self.thread.start()

    async def predict(self, texts):
        """The rows of ``texts``; 503 when the queue is full, 504 past the deadline."""
        parts = [(texts[start:start + self.max_batch], self.loop.create_future())
                 for start in range(0, len(texts), self.max_batch)]
        with self.lock:
            if self.waiting + len(texts) > self.max_queue:
                raise RequestError(f"the server is busy: {self.waiting} texts are waiting for the model "
                                   f"(at most {self.max_queue}); try again later", 503)
            was_empty = not self.jobs
            self.jobs.extend(parts)
            self.waiting += len(texts)
            if was_empty or self.waiting >= self.max_batch:  # the thread waits for a first job or a full batch
                self.lock.notify()
        self.requests += 1
        # A timer, not asyncio.wait_for: that would wrap every request in a task.
        timer = self.loop.call_later(self.deadline, _expire, parts, self.deadline)
        try:
            rows = []
            for _, future in parts:
                rows += await future
            return rows
        finally:
            timer.cancel()
            for _, future in parts:  # the parts not run yet are skipped
                if not future.cancel() and not future.cancelled():
                    future.exception()  # seen: no "exception was never retrieved" in the log

    def _take(self):
        """The jobs of the next call (None: stop), once the first has waited ``wait`` or the batch is full."""
        import time

        with self.lock:
            while not self.jobs:
                self.lock.wait()
            if self.wait > 0 and self.jobs[0] is not None:
                end = time.monotonic() + self.wait
                while self.waiting < self.max_batch and self.jobs[-1] is not None:
                    left = end - time.monotonic()
                    if left <= 0 or not self.lock.wait(left):
                        break
            jobs, count = [], 0
            while self.jobs and self.jobs[0] is not None and count + len(self.jobs[0][0]) <= self.max_batch:
                texts, future = self.jobs.popleft()
                count += len(texts)
                jobs.append((texts, future))
            self.waiting -= count
            if not jobs:
                return None
        return [job for job in jobs if not job[1].done()]  # done: past its deadline, or the client left

    def _work(self):
        while (jobs := self._take()) is not None:
            if not jobs:
                continue
            texts = [t for job_texts, _ in jobs for t in job_texts]
            self.texts += len(texts)
            self.calls += 1
            try:
                rows = self.model(texts)
            except Exception as e:  # the model failed: every request of the batch hears why
                self.loop.call_soon_threadsafe(_answer, jobs, None, e)
            else:
                self.loop.call_soon_threadsafe(_answer, jobs, rows, None)

    async def close(self):
        """Stop after the jobs queued so far."""
        import asyncio

        with self.lock:
            self.jobs.append(None)
            self.lock.notify()
        await asyncio.to_thread(self.thread.join)


def _answer(jobs, rows, error):
    """On the event loop: each job its own rows, or the model's error."""
    start = 0
    for texts, future in jobs:
        if not future.done():
            if error is None:
                future.set_result(rows[start:start + len(texts)])
            else:
                future.set_exception(error)
        start += len(texts)


def _expire(parts, deadline):
    for _, future in parts:
        if not future.done():
            future.set_exception(RequestError(f"the model did not answer within the deadline of "
                                              f"{deadline:g} s", 504))

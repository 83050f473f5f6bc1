"""The model's one worker thread: requests that wait while it is busy share its next call."""
from .limits import DEFAULT_DEADLINE, DEFAULT_MAX_QUEUE, MAX_BATCH
from .requests import RequestError


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


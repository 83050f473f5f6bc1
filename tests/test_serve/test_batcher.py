"""The batcher (lm_app/serve/batcher.py), in-process around a stand-in model: batches, a full queue, deadlines."""
import threading

import pytest

from lm_app.serve.batcher import Batcher
from lm_app.serve.requests import RequestError


class CountingModel:
    """A stand-in for the served model: each row names its text; ``gate`` can hold every call."""

    def __init__(self):
        self.calls = []
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, texts):
        self.gate.wait()
        self.calls.append(len(texts))
        return [{"text": t} for t in texts]


def with_batcher(body, **kwargs):
    """Run ``body(batcher, model)`` on an event loop, then close the batcher."""
    import asyncio

    model = CountingModel()

    async def main():
        batcher = Batcher(model, **kwargs)
        try:
            return await body(batcher, model)
        finally:
            model.gate.set()
            await batcher.close()

    return asyncio.run(main()), model


def test_big_requests_are_cut_into_calls_of_the_batch_size():
    import asyncio

    async def body(batcher, model):
        requests = [[f"r{r} t{i}".encode() for i in range(n)] for r, n in enumerate([150, 3, 64, 1])]
        answers = await asyncio.gather(*(batcher.predict(texts) for texts in requests))
        for texts, rows in zip(requests, answers):
            assert [row["text"] for row in rows] == texts
        return sum(map(len, requests))

    total, model = with_batcher(body, max_batch=64)
    assert max(model.calls) <= 64 and sum(model.calls) == total


def test_a_full_queue_is_a_503_and_a_late_answer_a_504():
    import asyncio

    async def body(batcher, model):
        model.gate.clear()  # the model is stuck on the first request
        first = asyncio.ensure_future(batcher.predict([b"a"] * 4))
        await asyncio.sleep(0.1)  # the worker takes it and waits for the model
        waiting = asyncio.ensure_future(batcher.predict([b"b"] * 8))
        await asyncio.sleep(0)
        with pytest.raises(RequestError) as full:
            await batcher.predict([b"c"] * 8)  # 8 + 8 texts waiting > 12
        late = await asyncio.gather(first, waiting, return_exceptions=True)
        return full.value, late

    (full, late), model = with_batcher(body, max_batch=4, max_queue=12, deadline=0.5)
    assert full.status == 503 and "busy" in str(full)
    assert all(isinstance(e, RequestError) and e.status == 504 for e in late), late
    assert model.calls == [4]  # the request past its deadline was never run


def test_without_a_wait_a_lone_request_has_a_call_of_its_own():
    async def body(batcher, model):
        for i in range(3):
            assert await batcher.predict([f"t{i}".encode()]) == [{"text": f"t{i}".encode()}]

    _, model = with_batcher(body, max_batch=4, wait=0.0)
    assert model.calls == [1, 1, 1]


def test_a_batch_wait_lets_requests_sent_one_after_another_share_a_call():
    """The wait ends as soon as the batch is full, so this takes no minute."""
    import asyncio

    async def body(batcher, model):
        sent = []
        for i in range(4):
            sent.append(asyncio.ensure_future(batcher.predict([f"t{i}".encode()])))
            await asyncio.sleep(0.01)  # one after another, not at once
        return await asyncio.gather(*sent)

    answers, model = with_batcher(body, max_batch=4, wait=60.0)
    assert model.calls == [4]
    assert [rows[0]["text"] for rows in answers] == [f"t{i}".encode() for i in range(4)]

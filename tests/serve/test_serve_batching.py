"""The batching scheduler's queue logic, with a scripted engine whose steps the test controls."""

from __future__ import annotations

import asyncio
import threading

import pytest

from zhllama.serve.batching import BatchScheduler, CallJob, Channel, Delta, GenJob, QueueFull, Started


class ScriptedEngine:
    """Streams ``steps`` one-character deltas per request; each step waits for ``gate`` when one is set."""

    context_length = 64

    def __init__(self, steps: int = 3, gate: threading.Event | None = None):
        self.steps, self.gate = steps, gate
        self.batches: list[list[list[int]]] = []
        self.started = threading.Event()
        self.yielded = 0

    def tokenizer(self, text, add_special_tokens=False):
        return {"input_ids": list(range(len(text)))}

    def stream(self, prompts, params, token_counts=None, negatives=None):
        self.batches.append([list(p) for p in prompts])
        self.started.set()
        if token_counts is not None:
            token_counts[:] = [0] * len(prompts)
        for step in range(self.steps):
            if self.gate is not None:
                assert self.gate.wait(10), "test gate never opened"
            for i in range(len(prompts)):
                last = step == self.steps - 1
                self.yielded += 1
                if token_counts is not None:
                    token_counts[i] = step + 1
                yield i, chr(ord("a") + prompts[i][0]), ("length" if last else None)

    def embed(self, texts):
        return [[float(len(t))] for t in texts]


class Params:
    max_new_tokens = 3


async def drain(channel: Channel, jobs: int, timeout: float = 10) -> dict[int, list]:
    events: dict[int, list] = {}
    finished = 0
    while finished < jobs:
        index, ev = await asyncio.wait_for(channel.get(), timeout)
        events.setdefault(index, []).append(ev)
        if isinstance(ev, BaseException) or (isinstance(ev, Delta) and ev.finish_reason):
            finished += 1
    return events


def gen_jobs(channel, prompts, start=0):
    return [GenJob((lambda p=p: [p]), Params(), channel, index=start + k) for k, p in enumerate(prompts)]


def test_concurrent_jobs_share_one_batch_and_get_their_own_deltas():
    async def main():
        engine = ScriptedEngine()
        sched = BatchScheduler(engine, max_batch_size=8, batch_wait_s=0.05)
        channel = Channel()
        sched.submit(gen_jobs(channel, [0, 1, 2]))
        sched.start()
        try:
            events = await drain(channel, 3)
        finally:
            sched.close()
        assert engine.batches == [[[0], [1], [2]]]
        for i in range(3):
            assert isinstance(events[i][0], Started) and events[i][0].prompt_tokens == 1
            deltas = events[i][1:]
            assert "".join(d.text for d in deltas) == chr(ord("a") + i) * 3
            assert deltas[-1].finish_reason == "length" and deltas[-1].completion_tokens == 3
    asyncio.run(main())


def test_jobs_arriving_during_a_batch_wait_for_the_next_and_batch_size_is_capped():
    async def main():
        gate = threading.Event()
        engine = ScriptedEngine(gate=gate)
        sched = BatchScheduler(engine, max_batch_size=2, batch_wait_s=0.0)
        sched.start()
        channel = Channel()
        try:
            sched.submit(gen_jobs(channel, [0]))
            assert await asyncio.to_thread(engine.started.wait, 10)
            sched.submit(gen_jobs(channel, [1, 2, 3], start=1))  # arrive while batch 1 runs
            assert sched.queued == 3
            gate.set()
            await drain(channel, 4)
        finally:
            sched.close()
        assert engine.batches == [[[0]], [[1], [2]], [[3]]]
        assert sched.stats.largest_batch == 2 and sched.stats.jobs == 4
    asyncio.run(main())


def test_full_queue_refuses_all_or_nothing():
    engine = ScriptedEngine()
    sched = BatchScheduler(engine, max_batch_size=1, max_queue=3)  # not started: nothing is consumed
    channel = Channel(asyncio.new_event_loop())
    sched.submit(gen_jobs(channel, [0, 1]))
    with pytest.raises(QueueFull):
        sched.submit(gen_jobs(channel, [2, 3]))
    assert sched.queued == 2
    sched.submit(gen_jobs(channel, [2]))
    assert sched.queued == 3


def test_failing_prompt_and_failing_engine_reach_only_their_requests():
    class Boom(ScriptedEngine):
        def stream(self, prompts, params, token_counts=None, negatives=None):
            yield 0, "x", None
            raise RuntimeError("device lost")

    async def main():
        sched = BatchScheduler(Boom(), batch_wait_s=0.05)
        channel = Channel()

        def bad_prompt():
            raise ValueError("too long")
        jobs = [GenJob(bad_prompt, Params(), channel, index=0)] + gen_jobs(channel, [1], start=1)
        sched.submit(jobs)
        sched.start()
        try:
            events = await drain(channel, 2)
            # the worker survives: an embedding call still runs afterwards
            call_channel = Channel()
            sched.submit([CallJob(lambda: "alive", call_channel)])
            assert await asyncio.wait_for(call_channel.get(), 10) == (0, "alive")
        finally:
            sched.close()
        assert isinstance(events[0][0], ValueError)
        assert isinstance(events[1][-1], RuntimeError) and "device lost" in str(events[1][-1])
    asyncio.run(main())


def test_cancelled_jobs_are_skipped_and_a_fully_cancelled_batch_stops_early():
    async def main():
        gate = threading.Event()
        engine = ScriptedEngine(steps=1000, gate=gate)
        sched = BatchScheduler(engine, batch_wait_s=0.05)
        channel = Channel()
        jobs = gen_jobs(channel, [0, 1, 2])
        jobs[1].cancelled = True  # client went away before its batch
        sched.submit(jobs)
        sched.start()
        assert await asyncio.to_thread(engine.started.wait, 10)
        for job in jobs:
            job.cancelled = True  # every client gone mid-stream
        gate.set()
        await asyncio.to_thread(sched.close)
        assert engine.batches == [[[0], [2]]]
        assert engine.yielded == 1  # the worker left the batch at the first step after the cancellation
        started = [await asyncio.wait_for(channel.get(), 1) for _ in range(2)]
        assert [i for i, ev in started if isinstance(ev, Started)] == [0, 2]
        assert channel._queue.empty()
    asyncio.run(main())


def test_http_503_when_the_queue_is_full_and_queued_requests_still_complete():
    from concurrent.futures import ThreadPoolExecutor

    from fastapi.testclient import TestClient

    from zhllama.serve.config import ApiSettings
    from zhllama.serve.openai import create_app

    class Engine(ScriptedEngine):
        def text_prompt(self, text):
            return [len(text) % 3]

    gate = threading.Event()
    engine = Engine(gate=gate)
    app = create_app(engine, ApiSettings(model_name="m", max_batch_size=1, max_queue=1, batch_wait_ms=0.0,
                                         scheduler="static"))
    body = {"model": "m", "prompt": "ab", "max_tokens": 3}
    with TestClient(app) as client, ThreadPoolExecutor(2) as pool:
        running = pool.submit(client.post, "/v1/completions", json=body)
        assert engine.started.wait(10)
        queued = pool.submit(client.post, "/v1/completions", json=body)
        for _ in range(200):  # bounded: until the second request sits in the queue
            if client.get("/health").json()["queued"] == 1:
                break
            threading.Event().wait(0.02)
        refused = client.post("/v1/completions", json=body)
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "queue_full" and refused.json()["error"]["type"] == "server_error"
        gate.set()
        assert running.result(10).status_code == 200 and queued.result(10).status_code == 200
        assert running.result().json()["choices"][0]["text"] == "ccc"


def test_close_stops_the_batch_in_progress():
    async def main():
        gate = threading.Event()
        engine = ScriptedEngine(steps=1000, gate=gate)
        sched = BatchScheduler(engine, batch_wait_s=0.0)
        channel = Channel()
        sched.submit(gen_jobs(channel, [0, 1]))
        sched.start()
        assert await asyncio.to_thread(engine.started.wait, 10)
        sched.close(timeout=0)  # flags the running jobs; returns at once
        gate.set()
        await asyncio.to_thread(sched._thread.join, 10)
        assert not sched._thread.is_alive() and engine.yielded == 1
    asyncio.run(main())


def test_a_staggered_burst_lands_in_one_batch():
    async def main():
        engine = ScriptedEngine()
        sched = BatchScheduler(engine, max_batch_size=8, batch_wait_s=1.0)  # gaps below 1 s keep the batch open
        sched.start()
        channel = Channel()
        try:
            for k in range(3):
                sched.submit(gen_jobs(channel, [k], start=k))
                await asyncio.sleep(0.05)
            await drain(channel, 3)
        finally:
            sched.close()
        assert engine.batches == [[[0], [1], [2]]]
    asyncio.run(main())

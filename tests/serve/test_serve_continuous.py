"""The continuous-batching scheduler over the tiny model's real engine, one decode step at a time."""

from __future__ import annotations

import asyncio
import threading

from zhllama.infer.sampling import SamplingParams
from zhllama.serve.batching import Channel, Delta, GenJob, Started
from zhllama.serve.continuous import ContinuousScheduler

from test_serve_batching import drain
from test_serve_isolation import PoisonedParams, _text


class Stepper:
    """The real engine, whose running batch takes a decode step only when the test allows it."""

    def __init__(self, engine):
        self.engine = engine
        self.permits = threading.Semaphore(0)
        self.rows: list[int] = []  # cache rows after each step
        self.entered = 0  # steps the worker has begun (it waits inside for a permit)
        self.stepped = threading.Condition()

    def __getattr__(self, name):
        return getattr(self.engine, name)

    def open_batch(self):
        batch = self.engine.open_batch()
        step = batch.step

        def gated():
            with self.stepped:
                self.entered += 1
                self.stepped.notify_all()
            assert self.permits.acquire(timeout=60), "the test never allowed this step"
            events = step()
            with self.stepped:
                self.rows.append(batch.rows)
                self.stepped.notify_all()
            return events
        batch.step = gated
        return batch

    def allow(self, steps: int) -> None:
        for _ in range(steps):
            self.permits.release()

    def wait_steps(self, n: int) -> None:
        """Until ``n`` steps are done and the worker waits inside the next one (its admissions are made)."""
        with self.stepped:
            assert self.stepped.wait_for(lambda: len(self.rows) >= n and self.entered > n, 60)


def greedy(n: int) -> SamplingParams:
    return SamplingParams(max_new_tokens=n, temperature=0.0)


def job(channel, ids, params, index):
    return GenJob(lambda: ids, params, channel, index=index)


async def events_in_order(channel: Channel, finishes: int) -> list[tuple[int, object]]:
    out = []
    while finishes:
        index, ev = await asyncio.wait_for(channel.get(), 60)
        out.append((index, ev))
        finishes -= isinstance(ev, BaseException) or (isinstance(ev, Delta) and ev.finish_reason is not None)
    return out


def test_a_request_arriving_mid_decode_finishes_before_the_running_one(engine):
    prompts = [engine.text_prompt(t) for t in ("Return the value of", "你好，世界")]
    alone = [engine.generate([p], greedy(n))[0].text for p, n in zip(prompts, (20, 3))]
    stepper = Stepper(engine)

    async def main():
        sched = ContinuousScheduler(stepper, batch_wait_s=0.0)
        sched.start()
        channel = Channel()
        try:
            sched.submit([job(channel, prompts[0], greedy(20), 0)])
            stepper.allow(2)
            await asyncio.to_thread(stepper.wait_steps, 2)
            sched.submit([job(channel, prompts[1], greedy(3), 1)])  # arrives while request 0 decodes
            stepper.allow(100)
            return await events_in_order(channel, 2), sched.stats
        finally:
            stepper.allow(100)
            sched.close()

    events, stats = asyncio.run(main())
    finish_at = {i: k for k, (i, ev) in enumerate(events) if isinstance(ev, Delta) and ev.finish_reason}
    assert finish_at[1] < finish_at[0]  # static batching would hold request 1 until request 0 ends
    assert max(stepper.rows) == 2 and stats.batches == 2 and stats.largest_batch == 2
    for i in (0, 1):  # batching changed nothing
        assert _text([ev for j, ev in events if j == i]) == alone[i]


def test_a_cancelled_request_leaves_the_batch_at_the_next_step(engine):
    prompts = [engine.text_prompt(t) for t in ("Return the value of", "你好，世界")]
    alone = engine.generate([prompts[0]], greedy(12))[0].text
    stepper = Stepper(engine)

    async def main():
        sched = ContinuousScheduler(stepper, batch_wait_s=0.2)
        channel = Channel()
        jobs = [job(channel, p, greedy(12), i) for i, p in enumerate(prompts)]
        sched.submit(jobs)
        sched.start()
        try:
            stepper.allow(2)
            await asyncio.to_thread(stepper.wait_steps, 2)
            jobs[1].cancelled = True  # its client went away
            stepper.allow(100)
            return await drain(channel, 1)
        finally:
            stepper.allow(100)
            sched.close()

    events = asyncio.run(main())
    # step 3 had begun when the client left: its row is dropped before step 4 (static batching: after step 12)
    assert stepper.rows[:4] == [2, 2, 2, 1]
    assert _text(events[0]) == alone and events[0][-1].finish_reason == "length"
    assert not any(isinstance(ev, Delta) and ev.finish_reason for ev in events.get(1, []))


def test_a_request_that_fails_inside_the_running_batch_fails_alone(engine):
    prompts = [engine.text_prompt(t) for t in ["北京", "上海", "你好", "中国"]]
    clean = [engine.generate([p], greedy(5))[0].text for p in prompts]
    params = [greedy(5), greedy(5), PoisonedParams(max_new_tokens=5, temperature=0.7), greedy(5)]

    async def main():
        sched = ContinuousScheduler(engine, max_batch_size=8, batch_wait_s=0.05)
        channel = Channel()
        sched.submit([job(channel, p, q, i) for i, (p, q) in enumerate(zip(prompts, params))])
        sched.start()
        try:
            return await drain(channel, 4, timeout=60), sched.stats
        finally:
            sched.close()

    events, stats = asyncio.run(main())
    assert stats.batch_sizes.get(4) == 1  # the four were admitted together before the step failed
    assert isinstance(events[2][-1], RuntimeError) and "poisoned" in str(events[2][-1])
    for i in (0, 1, 3):
        assert isinstance(events[i][0], Started) and events[i][-1].finish_reason is not None
        assert _text(events[i]) == clean[i]


def test_health_names_the_scheduler(client):
    health = client.get("/health").json()
    assert health["scheduler"] == "continuous" and "steps" in health

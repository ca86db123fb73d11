"""Dynamic batching: one worker thread owns the model; concurrent requests share its forward passes.

Requests are queued as jobs (one per choice: ``n=3`` is three jobs).  The worker takes every job
waiting (up to ``max_batch_size``; it lingers while requests keep arriving, see
:meth:`BatchScheduler._linger_for_more`), runs them as one batch through
:meth:`Engine.stream`, and hands each job its own deltas through a :class:`Channel` that the
asyncio side awaits.  Jobs arriving while a batch runs wait for the next batch.  The queue is
bounded: :meth:`BatchScheduler.submit` raises :class:`QueueFull` (HTTP 503) instead of letting
memory and latency grow without limit.

Tokenization (``job.prepare``) also runs on the worker thread: the model and its tokenizer are
touched by one thread only, so no locking is needed around Hugging Face objects.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

log = logging.getLogger("zhllama.serve")


LINGER_CAP = 5  # a batch waits at most this many batch_wait_s for more requests


class QueueFull(Exception):
    """The scheduler's queue holds ``max_queue`` jobs already."""


class Channel:
    """Thread -> asyncio hand-off: the worker ``put`` s, a coroutine ``await get()`` s."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None):
        self._loop = loop or asyncio.get_running_loop()
        self._queue: asyncio.Queue = asyncio.Queue()

    def put(self, item: Any) -> None:
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)
        except RuntimeError:  # the event loop is gone (server shutting down): nobody is listening
            pass

    async def get(self) -> Any:
        return await self._queue.get()


@dataclass
class Started:
    """First event of a generation job: its prompt was tokenized and it entered a batch."""

    prompt_tokens: int


@dataclass
class Delta:
    """A piece of a choice's text; the last one of a job carries ``finish_reason``.

    For a job that asked for log-probabilities: the entries of the tokens decoded since the last
    delta (``logprobs``), and on its first delta its prompt's (``prompt_logprobs``, when it echoes).
    """

    text: str
    finish_reason: str | None = None
    completion_tokens: int = 0  # set on the last delta
    logprobs: list | None = None
    prompt_logprobs: list | None = None


@dataclass
class GenJob:
    """One choice to generate; its events reach ``channel`` as ``(index, event)``."""

    prepare: Callable[[], list[int]]  # -> prompt ids; runs on the worker; may raise ZhllamaError
    params: Any  # zhllama.infer.engine.SamplingParams
    channel: Channel
    index: int = 0
    cancelled: bool = False
    negative: Callable[[], list[int] | None] | None = None  # -> CFG negative prompt ids; runs on the worker
    logprobs: Any = None  # zhllama.infer.logprobs.LogprobRequest, filled by the engine; None: none wanted

    def emit(self, event: Any) -> None:
        self.channel.put((self.index, event))

    def delta(self, text: str, finish: str | None, used: int) -> Delta:
        """The next delta, with the log-probabilities decoded since the last one when the job wants them."""
        if self.logprobs is None:
            return Delta(text, finish, used)
        prompt, new = self.logprobs.take()
        return Delta(text, finish, used, new, prompt)

    def engine_options(self) -> dict:
        """Keyword arguments for the engine's ``add``/``stream``: only what the job uses, so an engine without
        log-probabilities still serves every request that does not ask for them."""
        return {} if self.logprobs is None else {"logprobs": self.logprobs}


@dataclass
class CallJob:
    """Run ``fn`` on the model thread on its own (embeddings); its result or exception is emitted."""

    fn: Callable[[], Any]
    channel: Channel
    index: int = 0
    cancelled: bool = False

    def emit(self, event: Any) -> None:
        self.channel.put((self.index, event))


@dataclass
class SchedulerStats:
    """``batches``: groups of jobs started together (their sizes in ``batch_sizes``).  The continuous
    scheduler also counts its decode ``steps`` and the live jobs summed over them (``step_jobs``)."""

    batches: int = 0
    jobs: int = 0
    largest_batch: int = 0
    batch_sizes: dict[int, int] = field(default_factory=dict)
    steps: int = 0
    step_jobs: int = 0

    def record(self, size: int) -> None:
        self.batches += 1
        self.jobs += size
        self.largest_batch = max(self.largest_batch, size)
        self.batch_sizes[size] = self.batch_sizes.get(size, 0) + 1

    def record_step(self, live: int) -> None:
        self.steps += 1
        self.step_jobs += live
        self.largest_batch = max(self.largest_batch, live)


class BatchScheduler:
    """Static batching: a batch runs to its end before the jobs that arrived meanwhile start (``--scheduler static``)."""

    kind = "static"

    def __init__(self, engine, max_batch_size: int = 8, max_queue: int = 64, batch_wait_s: float = 0.03):
        if max_batch_size < 1 or max_queue < 1:
            raise ValueError("max_batch_size and max_queue must be >= 1")
        self.engine = engine
        self.max_batch_size = max_batch_size
        self.max_queue = max_queue
        self.batch_wait_s = batch_wait_s
        self.stats = SchedulerStats()
        self._pending: deque = deque()
        self._cv = threading.Condition()
        self._closed = False
        self._running: list[GenJob] = []
        self._thread = threading.Thread(target=self._run, name="zhllama-model-worker", daemon=True)

    # ---- asyncio side ----
    def start(self) -> None:
        self._thread.start()

    def close(self, timeout: float = 10.0) -> None:
        with self._cv:
            self._closed = True
            for job in self._running:  # the batch in progress stops at its next step
                job.cancelled = True
            self._cv.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def queued(self) -> int:
        return len(self._pending)

    def submit(self, jobs: list) -> None:
        """Queue ``jobs`` (all or none); :class:`QueueFull` when they do not fit."""
        with self._cv:
            if self._closed:
                raise QueueFull("the server is shutting down")
            if len(self._pending) + len(jobs) > self.max_queue:
                raise QueueFull(f"{len(self._pending)} jobs are queued (limit {self.max_queue})")
            self._pending.extend(jobs)
            self._cv.notify_all()

    # ---- worker side ----
    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            if not batch:  # every job taken had been cancelled
                continue
            if isinstance(batch[0], CallJob):
                self._run_call(batch[0])
            else:
                self._run_generation(batch)

    def _next_batch(self) -> list | None:
        """Block until work arrives; return one call job or up to max_batch_size generation jobs."""
        with self._cv:
            while not self._closed and not self._pending:
                self._cv.wait()
            if self._closed:
                self._fail_pending()
                return None
            if isinstance(self._pending[0], CallJob):
                return [self._pending.popleft()]
            self._linger_for_more()
            batch = []
            while self._pending and isinstance(self._pending[0], GenJob) and len(batch) < self.max_batch_size:
                job = self._pending.popleft()
                if not job.cancelled:
                    batch.append(job)
            return batch

    def _linger_for_more(self) -> None:
        """Wait (lock released) while requests keep arriving, so a burst lands in one batch.

        The batch starts when it is full, when no new job came for ``batch_wait_s``, or after
        ``LINGER_CAP`` gaps in all: a burst of clients rarely arrives within one fixed window, and a
        straggler left out would wait for the whole batch to finish.
        """
        start = time.monotonic()
        seen = len(self._pending)
        last_arrival = start
        while len(self._pending) < self.max_batch_size and not self._closed:
            now = time.monotonic()
            if len(self._pending) > seen:
                seen, last_arrival = len(self._pending), now
            left = min(last_arrival + self.batch_wait_s, start + LINGER_CAP * self.batch_wait_s) - now
            if left <= 0:
                break
            self._cv.wait(left)

    def _fail_pending(self) -> None:
        while self._pending:
            self._pending.popleft().emit(QueueFull("the server is shutting down"))

    def _run_call(self, job: CallJob) -> None:
        if job.cancelled:
            return
        try:
            job.emit(job.fn())
        except Exception as e:  # delivered to the request, which turns it into an error response
            job.emit(e)

    def _run_generation(self, jobs: list[GenJob]) -> None:
        ready, prompts, negatives = [], [], []
        for job in jobs:
            try:
                ids, negative = job.prepare(), job.negative() if job.negative else None
            except Exception as e:
                job.emit(e)
                continue
            job.emit(Started(len(ids)))
            ready.append(job)
            prompts.append(ids)
            negatives.append(negative)
        if ready:
            self._decode(ready, prompts, negatives)

    def _decode(self, ready: list[GenJob], prompts: list[list[int]], negatives: list[list[int] | None]) -> None:
        """Run ``ready`` as one batch; if the batch fails, no request pays for another's fault.

        Requests validate before they are queued, so a failure here is a bug or a resource problem
        tied to one request.  Every unfinished request that has not received text yet is run again
        on its own: the one at fault gets its error there, the others finish normally.  A request
        that already streamed text cannot be restarted invisibly and gets the error.
        """
        self.stats.record(len(ready))
        self._running = ready
        finished, spoke = [False] * len(ready), [False] * len(ready)
        counts: list[int] = []
        failure: Exception | None = None
        wanted = [j.logprobs for j in ready]
        options = {"logprobs": wanted} if any(w is not None for w in wanted) else {}
        stream = self.engine.stream(prompts, [j.params for j in ready], token_counts=counts, negatives=negatives,
                                    **options)
        try:
            for i, text, finish in stream:
                job = ready[i]
                used = counts[i] if finish else 0
                if not job.cancelled:
                    job.emit(job.delta(text, finish, used))
                spoke[i] = spoke[i] or bool(text)
                finished[i] = finished[i] or finish is not None
                if all(j.cancelled or f for j, f in zip(ready, finished)):
                    break
        except Exception as e:
            log.exception("generation failed for a batch of %d", len(ready))
            failure = e
        finally:
            self._running = []
            getattr(stream, "close", lambda: None)()
        for k, job in enumerate(ready):
            if finished[k] or job.cancelled:
                continue
            if failure is None:
                job.emit(RuntimeError("the engine ended a request without a finish reason"))
            elif len(ready) > 1 and not spoke[k] and not self._closed:
                self._decode([job], [prompts[k]], [negatives[k]])
            else:
                job.emit(failure)

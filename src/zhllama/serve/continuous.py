"""Continuous batching: requests join the running batch at the next decode step and leave it at once.

The worker of :class:`ContinuousScheduler` keeps one running batch of the engine
(:class:`zhllama.infer.batch.DecodeBatch`).  Between two decode steps it admits the jobs that
arrived (up to ``max_batch_size`` live ones; they are prefilled together and join the batch), drops
the cancelled ones (a client that went away: its KV rows are freed before the next step), runs
embedding calls, and hands every job its own deltas.  So a request that arrives while others decode
waits one step, not the end of their batch, and each keeps its own sampling, stop strings, seed and
CFG (they live in its rows of the batch).  The queue, the 503 when it is full, the embedding calls
and shutdown are :class:`BatchScheduler`'s, as is the per-request isolation: if a step fails, each
live job that has not streamed text yet is run again on its own.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from .batching import BatchScheduler, CallJob, GenJob, Started

log = logging.getLogger("zhllama.serve")


@dataclass
class _Live:
    job: GenJob
    prompt: list[int]
    negative: list[int] | None
    spoke: bool = False  # text was sent: the job can no longer be restarted invisibly


class ContinuousScheduler(BatchScheduler):
    """Step-level scheduling over the engine's running batch (``zhllama serve --scheduler continuous``)."""

    kind = "continuous"

    def _run(self) -> None:
        batch, live = self.engine.open_batch(), {}
        while True:
            taken = self._take(len(live))
            if taken is None:
                return
            admitted = 0
            for job in taken:
                if isinstance(job, CallJob):
                    self._run_call(job)
                else:
                    admitted += self._admit(batch, job, live)
            if admitted:
                self.stats.record(admitted)
            for number in [n for n, entry in live.items() if entry.job.cancelled]:
                batch.cancel(number)
                del live[number]
            self._running = [entry.job for entry in live.values()]
            if not live:
                continue
            try:
                events = batch.step()
            except Exception as e:
                log.exception("a decode step failed with %d live requests", len(live))
                self._isolate(e, list(live.values()))
                batch, live = self.engine.open_batch(), {}
                continue
            self.stats.record_step(len(live))
            for number, text, finish, generated in events:
                entry = live[number]
                if not entry.job.cancelled:
                    entry.job.emit(entry.job.delta(text, finish, generated if finish else 0))
                entry.spoke = entry.spoke or bool(text)
                if finish:
                    del live[number]

    def _take(self, live: int) -> list | None:
        """The jobs to admit now: wait only when nothing is decoding; None once the scheduler is closed.

        An idle worker lingers while requests keep arriving (as the static scheduler does), so a
        burst is prefilled in one forward pass; a running batch takes what is there and goes on.
        """
        with self._cv:
            while not self._closed and not self._pending and not live:
                self._cv.wait()
            if self._closed:
                self._fail_pending()
                return None
            if not live and self._pending and isinstance(self._pending[0], GenJob):
                self._linger_for_more()
            taken, room = [], self.max_batch_size - live
            while self._pending and (room > 0 or isinstance(self._pending[0], CallJob)):
                job = self._pending.popleft()
                if not job.cancelled:
                    taken.append(job)
                    room -= isinstance(job, GenJob)
            return taken

    def _admit(self, batch, job: GenJob, live: dict) -> int:
        """Tokenize a job and add it to the batch (prefilled at the next step); a bad one gets its error."""
        try:
            ids = job.prepare()
            negative = job.negative() if job.negative else None
            number = batch.add(ids, job.params, negative, **job.engine_options())
        except Exception as e:
            job.emit(e)
            return 0
        job.emit(Started(len(ids)))
        live[number] = _Live(job, ids, negative)
        return 1

    def _isolate(self, failure: Exception, entries: list[_Live]) -> None:
        """After a failed step: rerun alone each job that has not spoken, so only the one at fault fails."""
        entries = [e for e in entries if not e.job.cancelled]
        for entry in entries:
            if len(entries) > 1 and not entry.spoke and not self._closed:
                self._decode([entry.job], [entry.prompt], [entry.negative])
            else:
                entry.job.emit(failure)


SCHEDULERS = {"static": BatchScheduler, "continuous": ContinuousScheduler}

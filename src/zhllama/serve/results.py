"""Reading a request's events from its :class:`Channel` (asyncio side of the batching scheduler)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import AsyncIterator

from .batching import Channel, Delta, GenJob, Started
from .http import as_api_error


@dataclass
class ChoiceResult:
    text: str = ""
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    logprobs: list = field(default_factory=list)  # zhllama.infer.logprobs.TokenLogprob of each generated token
    prompt_logprobs: list | None = None  # and of each prompt token, when the request echoes them


async def collect(channel: Channel, jobs: list[GenJob]) -> list[ChoiceResult]:
    """Await every choice to its end; results in choice order.  A failed choice raises its APIError."""
    results = {job.index: ChoiceResult() for job in jobs}
    live = len(jobs)
    try:
        while live:
            index, event = await channel.get()
            if isinstance(event, BaseException):
                raise as_api_error(event)
            r = results[index]
            if isinstance(event, Started):
                r.prompt_tokens = event.prompt_tokens
                continue
            r.text += event.text
            r.logprobs += event.logprobs or []
            if event.prompt_logprobs is not None:
                r.prompt_logprobs = event.prompt_logprobs
            if event.finish_reason:
                r.finish_reason, r.completion_tokens = event.finish_reason, event.completion_tokens
                live -= 1
    finally:
        # Nobody reads the other choices now (client gone, or an error): queued ones are skipped and
        # running ones stop sending; their batch keeps its rows until every row is finished or cancelled.
        _cancel(jobs)
    return [results[i] for i in sorted(results)]


async def wait_started(channel: Channel, jobs: list[GenJob]) -> tuple[list, dict[int, int]]:
    """Await every choice's :class:`Started`; return the deltas that came meanwhile and prompt sizes by choice."""
    early: list = []
    started: dict[int, int] = {}
    while len(started) < len(jobs):
        index, event = await channel.get()
        if isinstance(event, BaseException):
            _cancel(jobs)
            raise as_api_error(event)
        if isinstance(event, Started):
            started[index] = event.prompt_tokens
        else:
            early.append((index, event))
    return early, started


async def stream_events(channel: Channel, jobs: list[GenJob], early: list) -> AsyncIterator[tuple[int, Delta]]:
    """Yield ``(choice index, Delta)`` until every choice has finished; a failure raises its APIError."""
    live = len(jobs)
    pending = list(early)
    while live:
        index, event = pending.pop(0) if pending else await channel.get()
        if isinstance(event, BaseException):
            raise as_api_error(event)
        if isinstance(event, Started):
            continue
        if event.finish_reason:
            live -= 1
        yield index, event


def _cancel(jobs: list[GenJob]) -> None:
    for job in jobs:
        job.cancelled = True

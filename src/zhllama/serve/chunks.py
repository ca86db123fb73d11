"""The bodies of OpenAI's answers that carry generated text: streamed chunks and the ``logprobs`` objects.

Two ``logprobs`` shapes, as OpenAI defines them:

- completions (the legacy API, which lm-evaluation-harness and vLLM speak): parallel lists
  ``tokens``, ``token_logprobs``, ``top_logprobs`` (per token a ``{token: logprob}`` dict of the most
  likely tokens and the chosen one, as vLLM lists them) and ``text_offset`` (characters of the
  choice's text before each token); with ``echo`` the prompt's tokens come first, the very first
  one with ``null``s (nothing predicts it);
- chat: ``{"content": [{"token", "logprob", "bytes", "top_logprobs": [{"token", "logprob", "bytes"}]}]}``.

A streamed chunk carries the entries of the tokens decoded since the previous chunk.
"""

from __future__ import annotations

import time
import uuid
from typing import Callable

from . import schemas as S
from .batching import Delta


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def completion_logprobs(entries: list, base: int = 0) -> dict:
    """The legacy shape of ``entries`` (``TokenLogprob`` s), their offsets moved on by ``base`` characters."""
    return {"tokens": [e.token for e in entries], "token_logprobs": [e.logprob for e in entries],
            "top_logprobs": [_top_with_chosen(e) for e in entries],
            "text_offset": [base + e.offset for e in entries]}


def _top_with_chosen(entry) -> dict[str, float] | None:
    if entry.top is None:
        return None
    out = {token: value for token, _, value in entry.top}
    out.setdefault(entry.token, entry.logprob)
    return out


def chat_logprobs(entries: list) -> dict:
    return {"content": [{"token": e.token, "logprob": e.logprob, "bytes": e.bytes,
                         "top_logprobs": [{"token": t, "logprob": v, "bytes": b} for t, b, v in e.top or ()]}
                        for e in entries], "refusal": None}


def completion_choice_logprobs(result, echo: str | None) -> dict:
    """A whole choice's legacy logprobs: the echoed prompt's entries, then the completion's after the echoed text."""
    prompt = result.prompt_logprobs if echo is not None and result.prompt_logprobs is not None else []
    return _joined(completion_logprobs(prompt), completion_logprobs(result.logprobs, len(echo or "")))


def _joined(first: dict, second: dict) -> dict:
    return {key: first[key] + second[key] for key in first}


class Chunker:
    obj = ""
    prefix = ""

    def __init__(self, req: S.SamplingFields, model: str):
        self.id, self.created, self.model = new_id(self.prefix), int(time.time()), model
        self.include_usage = req.include_usage()

    def chunk(self, choices: list[dict]) -> dict:
        return {"id": self.id, "object": self.obj, "created": self.created, "model": self.model, "choices": choices}

    def usage(self, usage: dict) -> dict:
        return {**self.chunk([]), "usage": usage}


class ChatChunker(Chunker):
    prefix, obj = "chatcmpl", "chat.completion.chunk"

    def __init__(self, req: S.ChatCompletionRequest, model: str):
        super().__init__(req, model)
        self.n, self.logprobs = req.n, req.logprobs

    def opening(self):
        return [self.chunk([{"index": i, "delta": {"role": "assistant", "content": ""}, "finish_reason": None,
                             "logprobs": None}]) for i in range(self.n)]

    def delta(self, index: int, d: Delta):
        out = []
        logprobs = chat_logprobs(d.logprobs) if self.logprobs and d.logprobs else None
        if d.text or logprobs:
            out.append(self.chunk([{"index": index, "delta": {"content": d.text}, "finish_reason": None,
                                    "logprobs": logprobs}]))
        if d.finish_reason:
            out.append(self.chunk([{"index": index, "delta": {}, "finish_reason": d.finish_reason, "logprobs": None}]))
        return out


class TextChunker(Chunker):
    """With ``echo``, a choice's first chunk starts with its prompt (and, with logprobs, the prompt's entries)."""

    prefix, obj = "cmpl", "text_completion"

    def __init__(self, req: S.CompletionRequest, model: str, echo: Callable[[int], str] | None):
        """``echo``: the text to echo for a prompt (by its index), or None without ``echo``."""
        super().__init__(req, model)
        self.n, self.echo, self.logprobs = req.n, echo, req.logprobs is not None
        self.started: set[int] = set()

    def opening(self):
        return []

    def delta(self, index: int, d: Delta):
        echo = self.echo(index // self.n) if self.echo is not None else None
        first = index not in self.started
        self.started.add(index)
        logprobs = None
        if self.logprobs:  # offsets count in the choice's whole text: after its echoed prompt
            prompt = completion_logprobs(d.prompt_logprobs if first and echo is not None and d.prompt_logprobs else [])
            logprobs = _joined(prompt, completion_logprobs(d.logprobs or [], len(echo or "")))
        text = (echo if first and echo is not None else "") + d.text
        return [self.chunk([{"index": index, "text": text, "finish_reason": d.finish_reason, "logprobs": logprobs}])]

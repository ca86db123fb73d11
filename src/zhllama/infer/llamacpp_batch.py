"""The running batch of ``--engine llamacpp``: llama.cpp sequences that requests join and leave between steps."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from ..errors import ZhllamaError
from .batch import _Request


@dataclass(eq=False)
class _Seq:
    request: _Request
    seq: int | None = None  # llama.cpp's sequence id while it holds one
    sampler: object = None
    fed: int = 0  # tokens of this sequence in the KV cache
    pending: int | None = None  # the token drawn last, fed at the next step

    @property
    def reserve(self) -> int:
        """KV cells this request may need at most: its prompt and its whole token budget."""
        return len(self.request.prompt) + self.request.budget


class LlamaCppBatch:
    """Requests being decoded by llama.cpp, with :class:`~zhllama.infer.batch.DecodeBatch`'s interface.

    A request joins at the next :meth:`step` when a sequence is free and its prompt plus its token
    budget fit in the KV cells the running ones leave (requests wait in order otherwise), and leaves
    (its cells freed) as soon as it finishes or is cancelled.  Each step feeds the running sequences'
    last tokens and the newcomers' prompts in one ``llama_decode`` (a long prompt's head goes first,
    in ``n_batch`` chunks), then draws one token per sequence with its own sampler.
    """

    def __init__(self, engine):
        self.engine = engine
        self.requests: dict[int, _Seq] = {}
        self.waiting: deque[int] = deque()
        self.free = list(range(engine.parallel))[::-1]
        self.closed = False

    def __len__(self) -> int:
        return len(self.requests)

    def add(self, prompt: list[int], params=None, negative: list[int] | None = None, logprobs=None) -> int:
        """Queue a request for the next step; return its number.  Bad input raises ZhllamaError here."""
        return self.join(self.engine.request(prompt, params, negative, logprobs=logprobs))

    def join(self, request: _Request) -> int:
        if request.negative is not None:
            raise ZhllamaError("guidance_scale (classifier-free guidance) is not available with --engine llamacpp",
                               "leave guidance_scale at 1, or use zhllama's own engine (leave out --engine llamacpp)")
        if self.closed:
            raise RuntimeError("this batch was closed (the engine opened another)")
        number = next(self.engine._numbers)
        self.requests[number] = _Seq(request)
        self.waiting.append(number)
        return number

    def cancel(self, number: int) -> None:
        """Drop a request now (a client that went away): its KV cells are freed."""
        entry = self.requests.pop(number, None)
        if entry is None:
            return
        if entry.seq is None:
            self.waiting.remove(number)
        else:
            self._release(entry)

    def close(self) -> None:
        for number in list(self.requests):
            self.cancel(number)
        self.closed = True

    def _release(self, entry: _Seq) -> None:
        self.engine.forget(entry.seq)
        self.engine.lib.llama_sampler_free(entry.sampler)
        self.free.append(entry.seq)
        entry.seq = entry.sampler = None

    def _admit(self) -> list[_Seq]:
        """Give waiting requests a sequence, in order, while one is free and their KV cells fit."""
        used = sum(e.reserve for e in self.requests.values() if e.seq is not None)
        admitted = []
        while self.waiting and self.free:
            entry = self.requests[self.waiting[0]]
            if used + entry.reserve > self.engine.context_length and used:
                break
            entry.sampler = self.engine.sampler(entry.request)  # may raise: the request then stays waiting
            self.waiting.popleft()
            entry.seq = self.free.pop()
            used += entry.reserve
            admitted.append(entry)
        return admitted

    def step(self) -> list[tuple[int, str, str | None, int]]:
        """One decode step: ``(number, text delta, finish_reason or None, tokens so far)`` per request whose
        text grew or that finished; a finished request has left the batch."""
        if self.closed:
            raise RuntimeError("this batch was closed (the engine opened another)")
        newcomers = self._admit()
        self._prefill(newcomers)
        order = [(n, e) for n, e in self.requests.items() if e.pending is not None]
        order += [(n, e) for n, e in self.requests.items() if e.pending is None and e.seq is not None]
        if not order:
            return []
        entries = []
        for _, e in order:
            tok = e.pending if e.pending is not None else e.request.prompt[-1]
            entries.append((tok, e.fed, e.seq, True))
        self.engine.decode_batch(entries)
        events = []
        lib, ctx = self.engine.lib, self.engine.ctx
        for i, (number, e) in enumerate(order):
            e.fed += 1
            e.pending = tok = int(lib.llama_sampler_sample(e.sampler, ctx, i))
            delta, finish = self.engine._advance(e.request, tok)
            if delta or finish:
                events.append((number, delta, finish, e.request.generated))
            if finish:
                del self.requests[number]
                self._release(e)
        return events

    def _prefill(self, newcomers: list[_Seq]) -> None:
        """Feed every newcomer's prompt but its last token (that one goes with the step's batch)."""
        tokens = [(tok, pos, e.seq, False) for e in newcomers for pos, tok in enumerate(e.request.prompt[:-1])]
        for start in range(0, len(tokens), self.engine.n_batch):
            self.engine.decode_batch(tokens[start:start + self.engine.n_batch])
        for e in newcomers:
            e.fed = len(e.request.prompt) - 1

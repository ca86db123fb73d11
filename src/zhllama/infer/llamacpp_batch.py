"""The running batch of ``--engine llamacpp``: llama.cpp sequences that requests join and leave between steps."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from .batch import _Request
from .stepped import SteppedBatch


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


class LlamaCppBatch(SteppedBatch):
    """Requests being decoded by llama.cpp, with :class:`~zhllama.infer.batch.DecodeBatch`'s interface.

    A request joins at the next :meth:`step` when a sequence is free and its prompt plus its token
    budget fit in the KV cells the running ones leave (requests wait in order otherwise), and leaves
    (its cells freed) as soon as it finishes or is cancelled.  Each step feeds the running sequences'
    last tokens and the newcomers' prompts in one ``llama_decode`` (prompts that do not fit in its
    ``n_batch`` tokens go first, in chunks), then draws one token per sequence with its own sampler.
    """

    def __init__(self, engine):
        super().__init__(engine)  # requests: number -> _Seq
        self.waiting: deque[int] = deque()
        self.free = list(range(engine.parallel))[::-1]
        self.closed = False

    def join(self, request: _Request) -> int:
        self.check_request(request)
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
        order = [(n, e) for n, e in self.requests.items() if e.pending is not None]
        order += [(n, e) for n, e in self.requests.items() if e.pending is None and e.seq is not None]
        if not order:
            return []
        heads = self._prefill(newcomers, room=self.engine.n_batch - len(order))
        entries = [(e.pending, e.fed, e.seq, True) for _, e in order if e.pending is not None]
        first = len(entries)  # the newcomers' last prompt tokens follow their heads
        entries += heads + [(e.request.prompt[-1], e.fed, e.seq, True) for _, e in order if e.pending is None]
        rows = list(range(first)) + list(range(first + len(heads), len(entries)))
        self.engine.decode_batch(entries)
        events = []
        lib, ctx = self.engine.lib, self.engine.ctx
        for row, (number, e) in zip(rows, order):
            e.fed += 1
            e.pending = tok = int(lib.llama_sampler_sample(e.sampler, ctx, row))
            delta, finish = self.engine._advance(e.request, tok)
            if delta or finish:
                events.append((number, delta, finish, e.request.generated))
            if finish:
                del self.requests[number]
                self._release(e)
        return events

    def _prefill(self, newcomers: list[_Seq], room: int) -> list[tuple[int, int, int, bool]]:
        """The newcomers' prompts but their last tokens (those go with the step's batch, with logits).

        When they fit in ``room`` they are returned, to go in the step's one ``llama_decode`` (a lone
        request's time to first token is one forward pass, as in llama.cpp); otherwise they are fed
        now, ``n_batch`` tokens at a time, and nothing is returned.
        """
        tokens = [(tok, pos, e.seq, False) for e in newcomers for pos, tok in enumerate(e.request.prompt[:-1])]
        for e in newcomers:
            e.fed = len(e.request.prompt) - 1
        if len(tokens) <= room:
            return tokens
        for start in range(0, len(tokens), self.engine.n_batch):
            self.engine.decode_batch(tokens[start:start + self.engine.n_batch])
        return []

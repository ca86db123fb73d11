"""What the engines that run on another library's batch share (``--engine vllm``, ``--engine llamacpp``).

Such an engine keeps zhllama's engine interface (:class:`~zhllama.infer.engine.Engine`: prompts,
sampling parameters, stop strings, streaming) and hands decoding to a batch object of its own
(``open_batch()``) with :class:`~zhllama.infer.batch.DecodeBatch`'s interface: ``add``/``join`` a
request, ``step`` them all, ``close``.  The features zhllama's engine has and these libraries do not
are refused here, in one line naming the engine.
"""

from __future__ import annotations

from typing import Iterator

from ..errors import ZhllamaError
from .batch import _Request
from .engine import Engine


class SteppedEngine(Engine):
    """An engine whose ``open_batch()`` returns a :class:`SteppedBatch` of its library; ``flag`` is its
    ``--engine`` value."""

    flag = ""

    def _decode(self, requests: list[_Request]) -> Iterator[tuple[int, str, str | None]]:
        batch = self.open_batch()
        try:
            index = {batch.join(r): i for i, r in enumerate(requests)}
            while len(batch):
                for number, delta, finish, _ in batch.step():
                    yield index[number], delta, finish
        finally:
            batch.close()  # the caller may stop early (a client went away, the server shut down)

    def embed(self, texts: list[str], batch_size: int = 16) -> list[list[float]]:
        raise ZhllamaError(f"embeddings are not served with --engine {self.flag}",
                           f"serve /v1/embeddings with zhllama's own engine (leave out --engine {self.flag})")


class SteppedBatch:
    """The part of a library's running batch that does not depend on the library: ``requests`` (live
    requests by number), ``add`` and the refusal of classifier-free guidance."""

    def __init__(self, engine: SteppedEngine):
        self.engine = engine
        self.requests: dict = {}

    def __len__(self) -> int:
        return len(self.requests)

    def add(self, prompt: list[int], params=None, negative: list[int] | None = None, logprobs=None) -> int:
        """Queue a request for the next step; return its number.  Bad input raises ZhllamaError here."""
        return self.join(self.engine.request(prompt, params, negative, logprobs=logprobs))

    def check_request(self, request: _Request) -> None:
        if request.negative is not None:
            flag = self.engine.flag
            raise ZhllamaError(f"guidance_scale (classifier-free guidance) is not available with --engine {flag}",
                               f"leave guidance_scale at 1, or use zhllama's own engine (leave out --engine {flag})")

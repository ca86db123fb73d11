"""Sampling parameters and choosing the next token for a batch whose rows have different settings.

The logits are shaped with transformers' own processors (repetition penalty, temperature, top-k,
top-p).  Those take one setting for the whole batch, so rows are grouped by identical settings and
each group is processed in one call: a batch whose requests share their settings (the usual case)
costs a single call per processor.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..config import check_ranges, option
from ..errors import ZhllamaError


@dataclass
class SamplingParams:
    """How one reply is sampled.  Its defaults are the project's only sampling defaults: the CLI
    (chat, generate), the server's request fields, the web UI's sliders and chat's /commands read them."""

    max_new_tokens: int = option("most tokens to generate per reply", 256, flags=("--max-new-tokens", "--max-tokens"), low=1)
    temperature: float = option("0 = greedy", 0.7, low=0, high=100)
    top_p: float = option("nucleus sampling", 0.9, positive=True, high=1)
    top_k: int = option("0 = off", 40, low=0)
    repetition_penalty: float = option("1.0 = off", 1.1, positive=True)
    stop: tuple[str, ...] = option("a stop string (repeatable); it is not included in the output", factory=tuple,
                                   repeat="append")
    seed: int | None = option("random seed for reproducible sampling", None)
    guidance_scale: float = option("classifier-free guidance (CFG): how far the reply is pushed from what the negative "
                                   "prompt would give; 1 = off (plain decoding), e.g. 1.5", 1.0, positive=True)
    negative_prompt: str | None = option("the CFG negative prompt: it replaces the system prompt of the conversation "
                                         "(raw text for completions); default: only the prompt's last token", None)

    def validate(self) -> "SamplingParams":
        """Return self with ``stop`` as a tuple, or raise a clear error for an out-of-range value."""
        for name in ("max_new_tokens", "top_k", "seed"):
            value = getattr(self, name)
            if (value is not None or name != "seed") and (isinstance(value, bool) or not isinstance(value, int)):
                raise ZhllamaError(f"{name}={value!r} must be a whole number", "e.g. 256")
        check_ranges(self)  # the bounds declared on the fields above
        stop = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop or ())
        if any(not isinstance(s, str) or not s for s in stop):
            raise ZhllamaError(f"stop={self.stop!r}: stop strings must be non-empty text", "e.g. stop=('\\n\\n',)")
        negative = self.negative_prompt
        if negative is not None and not isinstance(negative, str):
            raise ZhllamaError(f"negative_prompt={negative!r} must be text", "e.g. negative_prompt='回答要简短'")
        return replace(self, stop=stop, negative_prompt=negative or None)

    @property
    def guided(self) -> bool:
        """Whether classifier-free guidance is on (scale 1 is plain decoding: no unconditional rows at all)."""
        return float(self.guidance_scale) != 1.0

    @property
    def greedy(self) -> bool:
        return float(self.temperature) == 0.0

    def shaping_key(self) -> tuple:
        """Rows with equal keys shape their logits identically and share one processor call."""
        if self.greedy:
            return (0.0, 1.0, 0, float(self.repetition_penalty))
        return (float(self.temperature), float(self.top_p), int(self.top_k), float(self.repetition_penalty))


SAMPLING_DEFAULTS = SamplingParams()


def expand_params(params, n: int) -> list[SamplingParams]:
    """One validated SamplingParams per request."""
    if isinstance(params, SamplingParams) or params is None:
        return [(params or SamplingParams()).validate()] * n
    params = list(params)
    if len(params) != n:
        raise ZhllamaError(f"{len(params)} sampling params for {n} prompts", "give one SamplingParams, or one per prompt")
    return [p.validate() for p in params]


def build_processors(key: tuple):
    from transformers import (LogitsProcessorList, RepetitionPenaltyLogitsProcessor, TemperatureLogitsWarper,
                              TopKLogitsWarper, TopPLogitsWarper)

    temperature, top_p, top_k, penalty = key
    procs = LogitsProcessorList()
    if penalty != 1.0:
        procs.append(RepetitionPenaltyLogitsProcessor(penalty))
    if temperature > 0.0:
        if temperature != 1.0:
            procs.append(TemperatureLogitsWarper(temperature))
        if top_k > 0:
            procs.append(TopKLogitsWarper(top_k))
        if top_p < 1.0:
            procs.append(TopPLogitsWarper(top_p))
    return procs


def probabilities(scores):
    """Softmax of shaped scores, kept finite first.

    A legal but extreme setting (a temperature of 1e-311, a repetition penalty of 1e-300) makes the
    processors' division overflow to inf, and softmax of inf is NaN, on which ``multinomial`` raises.
    Clamping to the dtype's range keeps the distribution the processors meant (the largest scores
    share the mass; ``-inf`` from top-k/top-p becomes a score whose probability underflows to 0).
    """
    import torch

    info = torch.finfo(scores.dtype)
    return torch.softmax(torch.nan_to_num(scores, nan=info.min, posinf=info.max, neginf=info.min), dim=-1)


def guide(cond, uncond, scale):
    """Classifier-free guidance of the rows ``cond`` by their unconditional rows ``uncond`` (logits, one scale per row).

    transformers' formula (``UnbatchedClassifierFreeGuidanceLogitsProcessor``, first of ``generate``'s
    processors): ``scale * (log_softmax(cond) - log_softmax(uncond)) + log_softmax(uncond)``.  That
    processor itself does not fit the engine: it runs its own forward pass over its own cache, with one
    scale for the whole batch, whereas here each request has its own scale and its unconditional row is
    one more row of the shared batch (and leaves with it).  Equality with ``model.generate(guidance_scale=...)``
    is tested token for token.  A huge scale can overflow: the result is kept finite, as in :func:`probabilities`.
    """
    import torch

    c, u = torch.log_softmax(cond, dim=-1), torch.log_softmax(uncond, dim=-1)
    out = scale[:, None] * (c - u) + u
    info = torch.finfo(out.dtype)
    return torch.nan_to_num(out, nan=info.min, posinf=info.max, neginf=info.min)


SEED_SPACE = 2**64  # torch.Generator takes seeds in [-2**63, 2**64); any integer is reduced into [0, 2**64)


def generator_seed(seed: int | None) -> int:
    """A seed ``torch.Generator.manual_seed`` always accepts: ``seed`` reduced modulo 2**64, or a random one.

    Reducing (rather than refusing) keeps any integer a client sends deterministic, and one request's
    seed can never make the generator raise in the middle of a shared batch.
    """
    import torch

    if seed is None:
        return int(torch.randint(0, 2**62, (1,)).item())
    return int(seed) % SEED_SPACE


class Sampler:
    """Chooses next tokens for the rows of a batch; keeps one random generator per request.

    Requests are numbered in the order they are given or :meth:`add` ed; a running batch
    :meth:`remove` s the ones that left, so a long-running server keeps only its live ones.
    """

    def __init__(self, params: list[SamplingParams], device="cpu"):
        self.params: dict[int, SamplingParams] = {}
        self.generators: dict[int, object] = {}
        self.device = device
        self._processors: dict[tuple, object] = {}
        self._next = 0
        for p in params:
            self.add(p)

    def add(self, params: SamplingParams) -> int:
        """Take one more request (its own generator, seeded from ``params.seed``); return its number."""
        import torch

        number, self._next = self._next, self._next + 1
        g = torch.Generator(device=self.device)
        g.manual_seed(generator_seed(params.seed))
        self.params[number], self.generators[number] = params, g
        return number

    def remove(self, number: int) -> None:
        self.params.pop(number, None)
        self.generators.pop(number, None)

    def next_tokens(self, logits, history, rows: list[int]):
        """Next token per row.

        ``logits`` (n, vocab) are the last-position logits of the live rows, ``history`` (n, len) the
        ids each row has seen (left pads replaced by one of the row's own ids, so the repetition
        penalty sees nothing extra), ``rows`` the request index of each live row.
        """
        import torch

        logits = logits.float()
        chosen = torch.empty(len(rows), dtype=torch.long, device=logits.device)
        groups: dict[tuple, list[int]] = {}
        for i, r in enumerate(rows):
            groups.setdefault(self.params[r].shaping_key(), []).append(i)
        for key, members in groups.items():
            idx = torch.tensor(members, device=logits.device)
            if key not in self._processors:
                self._processors[key] = build_processors(key)
            procs = self._processors[key]
            scores = procs(history[idx], logits[idx])
            if key[0] == 0.0:
                chosen[idx] = scores.argmax(dim=-1)
                continue
            probs = probabilities(scores)
            for j, i in enumerate(members):
                chosen[i] = torch.multinomial(probs[j], 1, generator=self.generators[rows[i]])[0]
        return chosen

"""Speculative sampling with a draft model, for one request at a time.

A small draft model (e.g. Chinese-LLaMA-2-1.3B for a 7B, as Chinese-LLaMA-Alpaca-2 suggests,
sharing the tokenizer) proposes ``k`` tokens one by one; the target model scores all of them in
one forward pass and keeps the longest acceptable prefix, then adds one token of its own.  With
the acceptance rule of Leviathan et al. / Chen et al. (2023) — keep a proposed token with
probability min(1, p/q), else sample from the normalised max(0, p - q) — the output follows the
target model's distribution exactly; in greedy mode it is the target's greedy output (tested).

Hand-written rather than ``model.generate(assistant_model=...)`` so that it plugs into the
engine's streaming, stop strings, per-request seed and logits processors.  Both KV caches are cut
back (``DynamicCache.crop``) to the accepted tokens after every round.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from ..errors import ZhllamaError
from .sampling import SamplingParams, build_processors, probabilities


@dataclass
class SpeculativeStats:
    """Counters over every speculative round an engine ran (``Engine.speculative_stats``)."""

    rounds: int = 0
    proposed: int = 0  # draft tokens offered to the target
    accepted: int = 0  # of those, the ones the target kept

    @property
    def acceptance_rate(self) -> float:
        return self.accepted / self.proposed if self.proposed else 0.0

    @property
    def tokens_per_round(self) -> float:
        """Tokens gained per target forward pass (accepted drafts plus the target's own token)."""
        return (self.accepted + self.rounds) / self.rounds if self.rounds else 0.0


def check_draft(tokenizer, draft_tokenizer, draft_model, target_model) -> None:
    """The draft must speak the target's vocabulary: same pieces, same ids."""
    if draft_tokenizer.get_vocab() != tokenizer.get_vocab():
        raise ZhllamaError("the draft model's tokenizer differs from the model's",
                           "speculative sampling needs a draft with the very same tokenizer")
    rows = draft_model.get_output_embeddings().weight.shape[0]
    if rows != target_model.get_output_embeddings().weight.shape[0]:
        raise ZhllamaError(f"the draft model has {rows} output rows, the model "
                           f"{target_model.get_output_embeddings().weight.shape[0]}", "resize the draft to the tokenizer")


class _Runner:
    """One model with its own KV cache, fed tokens at explicit positions (batch of one, no padding).

    Logits are cut to the tokenizer's ``vocab`` ids: rows added by ``pad_vocab_to_multiple_of`` are
    no token and must never be proposed, accepted or sampled."""

    def __init__(self, model, vocab: int):
        from transformers import DynamicCache

        from .batch import cache_argument

        self.model = model
        self._cache_arg = cache_argument(model)
        self.vocab = vocab
        self.cache = DynamicCache(config=model.config)
        self.device = next(model.parameters()).device

    @property
    def seen(self) -> int:
        return self.cache.get_seq_length()

    def feed(self, tokens: list[int], all_logits: bool = False):
        import torch

        start = self.seen
        ids = torch.tensor([tokens], device=self.device)
        positions = torch.arange(start, start + len(tokens), device=self.device)[None]
        out = self.model(input_ids=ids, position_ids=positions, **{self._cache_arg: self.cache}, use_cache=True,
                         logits_to_keep=0 if all_logits else 1)
        return out.logits[0, :, :self.vocab].float()

    def keep(self, n: int) -> None:
        """Cut the cache back to its first ``n`` tokens."""
        if self.seen > n:
            self.cache.crop(n - self.seen)


def speculative_tokens(target, draft, prompt: list[int], params: SamplingParams, generator, vocab: int,
                       k: int = 4, stats: SpeculativeStats | None = None) -> Iterator[int]:
    """Yield the generated tokens one by one, forever (the caller stops at EOS/stop/length); ``vocab``
    is the tokenizer's length; ``stats``, when given, counts rounds and accepted draft tokens."""
    import torch

    procs = build_processors(params.shaping_key())
    t, d = _Runner(target, vocab), _Runner(draft, vocab)
    ids = list(prompt)
    if len(ids) > 1:  # prefill all but the last token, which each round feeds
        t.feed(ids[:-1])
        d.feed(ids[:-1])

    def shaped(history: list[int], logits):
        scores = procs(torch.tensor([history], device=logits.device), logits[None])[0]
        return scores if params.greedy else probabilities(scores)

    def pick(dist) -> int:
        if params.greedy:
            return int(dist.argmax())
        return int(torch.multinomial(dist, 1, generator=generator)[0])

    while True:
        proposal, drafts = [], []
        pending = ids[d.seen:]
        for _ in range(k):
            q = shaped(ids + proposal, d.feed(pending)[-1])
            proposal.append(pick(q))
            drafts.append(q)
            pending = proposal[-1:]
        scores = t.feed(ids[t.seen:] + proposal, all_logits=True)[-(k + 1):]
        accepted = _verify(ids, proposal, drafts, scores, shaped, pick, params.greedy, generator)
        if stats is not None:
            stats.rounds += 1
            stats.proposed += k
            stats.accepted += len(accepted) - 1
        for tok in accepted:
            ids.append(tok)
            yield tok
        t.keep(len(ids) - 1)
        d.keep(min(d.seen, len(ids) - 1))


def _verify(ids, proposal, drafts, scores, shaped, pick, greedy: bool, generator) -> list[int]:
    """The accepted prefix of ``proposal`` plus one token from the target (a correction or a bonus)."""
    import torch

    accepted: list[int] = []
    for j, tok in enumerate(proposal):
        p = shaped(ids + accepted, scores[j])
        if greedy:
            if int(p.argmax()) == tok:
                accepted.append(tok)
                continue
            return accepted + [int(p.argmax())]
        q = drafts[j]
        if torch.rand(1, generator=generator, device=p.device).item() * q[tok].item() < p[tok].item():
            accepted.append(tok)
            continue
        residual = (p - q).clamp(min=0)
        return accepted + [pick(residual / residual.sum() if residual.sum() > 0 else p)]
    return accepted + [pick(shaped(ids + accepted, scores[len(proposal)]))]

"""Token log-probabilities of a request: what the OpenAI API's ``logprobs``, ``top_logprobs`` and ``echo`` return.

A request that wants them carries a :class:`LogprobRequest`; the engine fills it as it decodes
(``entries``: one per generated token) and, with ``prompt=True``, at prefill (``prompt_entries``:
one per prompt token, the first one ``None`` since nothing predicts it).  A request without one
costs nothing: no softmax, no top-k, no full-prompt logits (its rows are prefilled apart from those
of requests that echo their prompt, with the last position's logits only).

The values are the model's own: ``log_softmax`` of the raw logits, before temperature, top-k/top-p,
the repetition penalty and CFG shape them for sampling.  That is vLLM's default (``raw_logprobs``)
and what ``zhllama eval ppl`` sums (tested equal), so a loglikelihood computed over the API is the
same number as the one computed in-process.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .stream import TextStream

PROMPT_CHUNK = 256  # prompt positions turned into log-probabilities at once (bounds the float32 copy)
_BYTE_PIECE = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")


@dataclass
class TokenLogprob:
    """One token of a sequence: its text, its UTF-8 bytes, its log-probability and the most likely tokens there."""

    id: int
    token: str
    bytes: list[int]
    logprob: float | None  # None for a prompt's first token
    offset: int  # characters of the sequence's text before this token
    top: list[tuple[str, list[int], float]] | None  # (token, bytes, logprob), most likely first; None where logprob is


@dataclass
class LogprobRequest:
    """What one request asks for (``top`` alternatives per position; the prompt's too; whether it generates at all)
    and, as it decodes, what it got."""

    top: int = 0
    prompt: bool = False
    generate: bool = True  # False: score the prompt only (OpenAI's ``echo`` with ``max_tokens: 0``)
    prompt_entries: list[TokenLogprob] | None = None
    prompt_text: str = ""  # the prompt's text as decoded from its ids (what ``offset`` counts in)
    entries: list[TokenLogprob] = field(default_factory=list)
    _sent: int = 0
    _prompt_sent: bool = False

    def fresh(self) -> "LogprobRequest":
        """The same request, with nothing got yet (one per choice)."""
        return LogprobRequest(self.top, self.prompt, self.generate)

    def reset(self) -> None:
        """Start afresh (a request run again after its batch failed)."""
        self.prompt_entries, self.prompt_text, self.entries, self._sent, self._prompt_sent = None, "", [], 0, False

    def take(self) -> tuple[list[TokenLogprob] | None, list[TokenLogprob]]:
        """The prompt's entries (once, when ready) and the generated ones not taken yet."""
        prompt = None
        if self.prompt_entries is not None and not self._prompt_sent:
            prompt, self._prompt_sent = self.prompt_entries, True
        new, self._sent = self.entries[self._sent:], len(self.entries)
        return prompt, new


class TokenNames:
    """Each token id's own text and bytes, as the API lists tokens (cached: the vocabulary is finite).

    A token is decoded after a fixed one-letter token, so SentencePiece's rule that a text's first
    ``▁`` loses its space does not apply to it: ``▁the`` is ``" the"`` wherever it stands.  A
    byte-fallback token (``<0xE4>``) is one byte of a character: OpenAI writes it ``bytes:\\xe4``
    and its ``bytes`` are that byte.
    """

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        ids = tokenizer("a", add_special_tokens=False)["input_ids"]
        self._lead = ids[-1:] if ids else []
        self._lead_text = self._decode(self._lead)
        self._cache: dict[int, tuple[str, list[int]]] = {}

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)

    def __call__(self, token_id: int) -> tuple[str, list[int]]:
        found = self._cache.get(token_id)
        if found is None:
            found = self._cache[token_id] = self._name(token_id)
        return found

    def _name(self, token_id: int) -> tuple[str, list[int]]:
        piece = self.tokenizer.convert_ids_to_tokens(token_id)
        byte = _BYTE_PIECE.match(piece) if isinstance(piece, str) else None
        if byte:
            value = int(byte.group(1), 16)
            return f"bytes:\\x{value:02x}", [value]
        text = self._decode(self._lead + [token_id])
        text = text[len(self._lead_text):] if text.startswith(self._lead_text) else text
        return text, list(text.encode("utf-8", "surrogatepass"))


def text_offsets(tokenizer, ids: list[int]) -> tuple[str, list[int]]:
    """The text of ``ids`` (special tokens skipped) and, per id, how many of its characters come before it.

    The bytes of a character split over byte-fallback tokens belong to the token that completes it.
    """
    stream = TextStream(tokenizer)
    offsets = []
    for token_id in ids:
        offsets.append(len(stream.text))
        stream.push(token_id)
    return stream.text, offsets


def position_logprobs(logits, targets, top: int):
    """Log-probabilities of ``targets`` (n,) under ``logits`` (n, vocab), and the ``top`` most likely per row.

    Returns ``(chosen, top_ids, top_values)`` as Python lists (``top_*`` empty lists when ``top`` is 0).
    """
    import torch

    logp = torch.log_softmax(logits.float(), dim=-1)
    chosen = logp.gather(1, targets.view(-1, 1).to(logp.device)).view(-1).tolist()
    if top <= 0:
        return chosen, [[] for _ in chosen], [[] for _ in chosen]
    values, ids = torch.topk(logp, min(top, logp.shape[-1]), dim=-1)
    return chosen, ids.tolist(), values.tolist()


def entries_for(names: TokenNames, ids: list[int], chosen: list[float], top_ids, top_values,
                offsets: list[int]) -> list[TokenLogprob]:
    out = []
    for tok, lp, t_ids, t_vals, off in zip(ids, chosen, top_ids, top_values, offsets):
        token, raw = names(tok)
        out.append(TokenLogprob(tok, token, raw, lp, off, [(*names(i), v) for i, v in zip(t_ids, t_vals)]))
    return out


def prompt_entries(names: TokenNames, tokenizer, prompt: list[int], logits, top: int) -> tuple[str, list[TokenLogprob]]:
    """Every prompt token's entry from the logits of the prompt's positions (``logits[j]`` predicts ``prompt[j + 1]``).

    ``logits``: (len(prompt), vocab) for this row, padding already cut off.  Worked in chunks of
    positions so the float32 log-softmax never holds the whole prompt at once.
    """
    import torch

    text, offsets = text_offsets(tokenizer, prompt)
    first_name, first_bytes = names(prompt[0])
    entries = [TokenLogprob(prompt[0], first_name, first_bytes, None, offsets[0], None)]
    targets = torch.tensor(prompt[1:], dtype=torch.long)
    for start in range(0, len(prompt) - 1, PROMPT_CHUNK):
        stop = min(start + PROMPT_CHUNK, len(prompt) - 1)
        chosen, t_ids, t_vals = position_logprobs(logits[start:stop], targets[start:stop], top)
        entries += entries_for(names, prompt[start + 1:stop + 1], chosen, t_ids, t_vals, offsets[start + 1:stop + 1])
    return text, entries


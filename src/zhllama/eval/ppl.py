"""``zhllama eval ppl``: sliding-window perplexity, bits per character and bits per byte.

The strided method of the Hugging Face perplexity guide: windows of ``context`` tokens start every
``stride`` tokens; each window scores only the tokens not scored by an earlier one, so every
token is predicted exactly once, with up to ``context - 1`` tokens of history (at least
``context - stride`` once the first window has passed).  The negative log-likelihoods are summed
exactly (per token), not averaged per window.

Perplexity depends on the tokenizer (a larger Chinese vocabulary makes fewer, harder tokens);
bits per character and per UTF-8 byte divide the same total by the length of the text, so they
compare models with different tokenizers fairly.

Inputs: a ``.txt`` file is one text; ``.jsonl``/``.json`` files give one text per record
(:func:`zhllama.text.iter_documents`), each scored on its own from BOS.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from ..errors import ZhllamaError, require_file
from ..templates import encode_plain_text
from ..text import base_suffix, iter_documents, open_text
from .config import PplConfig
from .task import EvalTask


@dataclass
class PplTotals:
    nll: float = 0.0  # nats, summed over scored tokens
    tokens: int = 0  # scored tokens
    chars: int = 0
    bytes: int = 0
    texts: int = 0

    def add(self, other: "PplTotals") -> None:
        for k in ("nll", "tokens", "chars", "bytes", "texts"):
            setattr(self, k, getattr(self, k) + getattr(other, k))

    def report(self) -> dict:
        if not self.tokens:
            raise ZhllamaError("no tokens to score", "give a text with at least one token")
        bits = self.nll / math.log(2)
        return {"texts": self.texts, "tokens": self.tokens, "chars": self.chars, "bytes": self.bytes,
                "nll_per_token": self.nll / self.tokens, "ppl": math.exp(self.nll / self.tokens),
                "bits_per_char": bits / self.chars if self.chars else None,
                "bits_per_byte": bits / self.bytes if self.bytes else None}


def read_texts(path: str | Path, text_field: str = "text") -> list[str]:
    p = require_file(path, "text file")
    if base_suffix(p) in (".jsonl", ".json"):
        texts = list(iter_documents(p, text_field))
    else:
        try:
            with open_text(p) as f:
                texts = [f.read()]
        except UnicodeDecodeError as e:
            raise ZhllamaError(f"{p}: not UTF-8 text (byte {e.start})", "convert the file to UTF-8") from None
    texts = [t for t in texts if t.strip()]
    if not texts:
        raise ZhllamaError(f"{p}: no text to score", "the file is empty")
    return texts


def windows(n_tokens: int, context: int, stride: int) -> list[tuple[int, int, int]]:
    """(begin, end, first scored position) of each window over ids[0:n_tokens].

    Position ``t`` is scored when the model predicts ``ids[t]`` from ``ids[begin:t]``; position 0
    (BOS, or the first token) has no history and is never scored.
    """
    out, scored_to, begin = [], 1, 0
    while scored_to < n_tokens:
        end = min(begin + context, n_tokens)
        out.append((begin, end, scored_to))
        scored_to = end
        begin += stride
        if begin >= scored_to:  # a stride longer than the context would skip tokens
            begin = scored_to - 1
    return out


def score_ids(model, ids: list[int], context: int, stride: int) -> tuple[float, int]:
    """(summed NLL in nats, tokens scored) of one token sequence."""
    import torch

    device = next(model.parameters()).device
    total, count = 0.0, 0
    for begin, end, first in windows(len(ids), context, stride):
        chunk = torch.tensor([ids[begin:end]], device=device)
        keep = torch.zeros_like(chunk, dtype=torch.bool)
        keep[0, first - 1 - begin: end - 1 - begin] = True  # positions whose next token is scored
        with torch.inference_mode():
            logits = model(input_ids=chunk, logits_to_keep=keep).logits.float()  # (n_scored, vocab)
        targets = chunk[0, first - begin: end - begin]
        logp = torch.log_softmax(logits.view(-1, logits.shape[-1]), dim=-1)
        total -= float(logp.gather(1, targets.view(-1, 1)).sum())
        count += len(targets)
    return total, count


def text_ids(tokenizer, text: str) -> list[int]:
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    return bos + encode_plain_text(tokenizer, text)


def check_window(context: int | None, stride: int | None) -> None:
    if context is not None and context < 2:
        raise ZhllamaError(f"--context {context} is too small", "use at least 2 tokens")
    if stride is not None and (stride < 1 or (context is not None and stride > context)):
        raise ZhllamaError(f"--stride {stride} must be between 1 and --context ({context})", "e.g. half the context")


def check_context_fits(config, context: int) -> None:
    """A window longer than the model's positions would score garbage silently: refuse it.

    With RoPE scaling in the config, the model is meant to run up to ``factor`` times its original length.
    """
    from ..model.rope import scaled_context

    limit = scaled_context(config)
    if limit and context > limit:
        raise ZhllamaError(f"--context {context} is longer than the model's {limit} positions",
                           f"use --context {limit} or less, or a model trained for longer context (RoPE scaling)")


def perplexity(model, tokenizer, texts: list[str], context: int, stride: int, progress: bool = True) -> dict:
    """Totals and derived figures over ``texts``."""
    from tqdm.auto import tqdm

    check_window(context, stride)
    check_context_fits(model.config, context)
    totals = PplTotals()
    for text in tqdm(texts, desc="texts", unit="text", disable=not progress or len(texts) < 2):
        nll, n = score_ids(model, text_ids(tokenizer, text), context, stride)
        totals.add(PplTotals(nll, n, len(text), len(text.encode("utf-8")), 1))
    return {**totals.report(), "context": context, "stride": stride}


def ppl_command(cfg) -> int:
    """``zhllama eval ppl``: score ``cfg.text`` (a :class:`~zhllama.eval.config.PplConfig`), print and write the JSON."""
    import json
    import sys

    from ..io import write_json_atomic
    from ..model.load import load_model
    from ..model.rope import apply_rope_scaling, parse_rope_scaling, scaled_context

    m = cfg.load
    check_window(cfg.context, cfg.stride)
    if cfg.rope_scaling:
        parse_rope_scaling(cfg.rope_scaling)
    texts = read_texts(cfg.text, cfg.text_field)
    if str(m.model).endswith(".gguf"):  # a zhllama export gguf file, run by llama.cpp
        from .llamacpp import gguf_perplexity

        if m.lora:
            raise ZhllamaError("--lora cannot be applied to a GGUF file", "merge the adapter, then export again")
        if cfg.rope_scaling:
            raise ZhllamaError("--rope-scaling is not applied to a GGUF file", "the GGUF file carries the scaling "
                               "the model was exported with")
        scores = gguf_perplexity(m.model, texts, cfg.context, cfg.stride, progress=sys.stderr.isatty())
    else:
        model, tokenizer = load_model(m.model, lora=m.lora, dtype=m.dtype, device=m.device, quantize=m.quantize,
                                      attn=m.attn)
        if cfg.rope_scaling:
            apply_rope_scaling(model, cfg.rope_scaling)
        context = scaled_context(model.config) if cfg.context is None else cfg.context
        stride = max(1, context // 2) if cfg.stride is None else cfg.stride
        scores = perplexity(model, tokenizer, texts, context, stride, progress=sys.stderr.isatty())
    result = {"model": str(m.model), "lora": m.lora, "text": str(cfg.text), **scores}
    if cfg.rope_scaling:
        result["rope_scaling"] = cfg.rope_scaling
    if cfg.out:
        write_json_atomic(cfg.out, result)
    print(json.dumps(result, ensure_ascii=False, indent=2))
    return 0


TASK = EvalTask("ppl", PplConfig, ppl_command, help="sliding-window perplexity, bits per character and per byte",
                description="Perplexity of a text with a sliding window that scores every token once (windows of "
                            "--context tokens every --stride tokens), plus bits per character and bits per UTF-8 "
                            "byte, which compare models with different tokenizers. Prints JSON.")

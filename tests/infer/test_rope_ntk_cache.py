"""Dynamic NTK and the KV cache, as they actually behave in the engine (documented in docs/long-context.md).

transformers' dynamic NTK recomputes the RoPE frequencies whenever a forward pass reaches a longer
sequence than before.  The engine decodes with a KV cache, so the keys of the prompt keep the
rotation of the prefill's frequencies while each new token's query and key get the grown ones; a
decode without a cache would re-rotate every key.  Within the original length nothing is
recomputed and the two agree exactly.
"""

from __future__ import annotations

import pytest
import torch
from transformers import DynamicCache

from zhllama.infer.engine import Engine
from zhllama.rope_scaling import RopeScaling


@pytest.fixture(scope="module")
def ntk_engine(tiny_model_dir):
    return Engine.load(tiny_model_dir, rope_scaling=RopeScaling.from_text("ntk:2"), dtype="float32", device="cpu")


def _next_logits_cached_and_recomputed(engine, prompt: list[int]):
    """Logits for the token after ``prompt + [t]`` (t = the greedy next token), through the engine's own forward:
    with the prefill's KV cache, and recomputed from scratch."""
    ids = torch.tensor([prompt])
    ones = torch.ones_like(ids)
    positions = torch.arange(len(prompt))[None]
    cache = DynamicCache(config=engine.model.config)
    first = engine._forward(ids, ones, positions, cache)
    tok = first.argmax(-1, keepdim=True)
    cached = engine._forward(tok, torch.ones(1, len(prompt) + 1, dtype=torch.long), positions[:, -1:] + 1, cache)
    full = torch.cat([ids, tok], dim=1)
    fresh = engine._forward(full, torch.ones_like(full), torch.arange(full.shape[1])[None],
                            DynamicCache(config=engine.model.config))
    return cached, fresh


def test_within_the_original_length_the_cache_changes_nothing(ntk_engine):
    cached, fresh = _next_logits_cached_and_recomputed(ntk_engine, [1] + list(range(100, 400)))
    torch.testing.assert_close(cached, fresh, atol=1e-5, rtol=1e-5)


def test_beyond_it_cached_keys_keep_the_prefills_rotation(ntk_engine):
    """Past 512 positions each step grows the frequencies; cached keys are not re-rotated, so the
    cached decode differs from a full recompute (slightly: here ~1e-3 of the logits' scale)."""
    cached, fresh = _next_logits_cached_and_recomputed(ntk_engine, [1] + list(range(100, 400)) * 2)
    gap = (cached - fresh).abs().max().item()
    assert gap > 1e-5, "dynamic NTK no longer differs with a KV cache: update docs/long-context.md"
    assert gap < 0.1 * fresh.abs().max().item()
    rotary = ntk_engine.model.model.rotary_emb
    assert rotary.max_seq_len_cached == 602  # the frequencies of the longest sequence seen so far

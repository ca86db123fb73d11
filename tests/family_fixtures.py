"""The tiny model of each family that the family tests build: its shape and the vocabulary it is built on
(conftest's ``family_model_dirs``), and random biases and norms.

A freshly initialised model has zeros and ones in its biases and norms, which a stage or an engine that
dropped Qwen2's q/k/v biases or Qwen3's q/k norms would reproduce unnoticed; the family tests perturb them
first (:func:`jitter_biases_and_norms`).
"""

from __future__ import annotations

from pathlib import Path

# family -> (byte-level vocabulary shape in conftest's byte_level_tokenizer_dirs, model init options)
SHAPES = {"llama": ("llama3", {"rope_theta": 500000.0, "llama3_rope_factor": 8.0}), "qwen2": ("qwen2", {}),
          "qwen3": ("qwen2", {"rope_theta": 1000000.0})}
TEMPLATES = {"llama": "llama3", "qwen2": "qwen", "qwen3": "qwen"}  # each family's default chat template


def init_family_model(family: str, tokenizer_dirs: dict, out: Path, *, hidden: int = 64, heads: int = 4,
                      kv_heads: int = 2, intermediate: int = 128) -> Path:
    """A random tiny model of ``family`` on its vocabulary (``zhllama model init --family``)."""
    from zhllama.model.init import InitConfig, init_model

    shape, extra = SHAPES[family]
    return init_model(InitConfig(family=family, tokenizer=str(tokenizer_dirs[shape]), out=str(out), hidden_size=hidden,
                                 layers=2, heads=heads, kv_heads=kv_heads, intermediate_size=intermediate,
                                 max_position=512, seed=0, **extra))


def jitter_biases_and_norms(model, scale: float, seed: int = 1) -> None:
    """Add seeded noise of ``scale`` to every bias and norm weight of ``model``, in place."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or "norm" in name:
                p.copy_(p + scale * torch.randn(p.shape, generator=g))


def engine_test_model(family: str, tokenizer_dirs: dict, out: Path, sharpen: bool = False) -> Path:
    """The model the engine parity tests (vLLM, llama.cpp) decode: 128 wide, biases and norms jittered;
    ``sharpen`` scales queries, keys and embeddings up so that greedy choices are not near-ties that
    another engine's rounding (llama.cpp's) could flip."""
    import torch
    from transformers import AutoModelForCausalLM

    init_family_model(family, tokenizer_dirs, out, hidden=128, heads=2, kv_heads=1, intermediate=256)
    model = AutoModelForCausalLM.from_pretrained(str(out), dtype=torch.float32)
    jitter_biases_and_norms(model, 0.5)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if sharpen and name.endswith(("q_proj.weight", "k_proj.weight")):
                p.mul_(12.0)
            elif sharpen and name.endswith(("lm_head.weight", "embed_tokens.weight")):
                p.mul_(10.0)
    model.save_pretrained(out)
    return out

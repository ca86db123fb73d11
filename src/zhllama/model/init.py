"""A randomly initialised LLaMA-architecture model in Hugging Face format."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..config import option
from ..errors import ZhllamaError
from ..io import atomic_dir


@dataclass(kw_only=True)
class ModelShape:
    """The shape of a LLaMA-architecture model: ``model init`` options and the pipeline's ``base:`` section."""

    hidden_size: int = option("hidden size", 256, low=1)
    layers: int = option("transformer layers", 4, low=1)
    heads: int = option("attention heads", 4, low=1)
    kv_heads: int | None = option("key/value heads (GQA); default = heads", None, low=1)
    intermediate_size: int | None = option("MLP width; default LLaMA's 8h/3", None, low=1)
    max_position: int = option("longest context in tokens", 2048, low=2)
    rope_theta: float = option("RoPE base frequency", 10000.0, positive=True)


@dataclass(kw_only=True)
class InitConfig(ModelShape):
    """``zhllama model init``: its options, and the argument of :func:`init_model`."""

    tokenizer: str = option("tokenizer folder (from `zhllama tokenizer merge`)")
    seed: int = option("seed of the random weights", 0)
    out: str = option("output folder")
    overwrite: bool = option("replace an existing output folder", False)


def llama_config(vocab_size: int, cfg: InitConfig, tokenizer):
    from transformers import LlamaConfig

    if cfg.hidden_size % cfg.heads:
        raise ZhllamaError(f"--hidden-size {cfg.hidden_size} is not divisible by --heads {cfg.heads}",
                           "choose heads that divide the hidden size")
    kv = cfg.kv_heads or cfg.heads
    if cfg.heads % kv:
        raise ZhllamaError(f"--heads {cfg.heads} is not divisible by --kv-heads {kv}", "choose kv-heads dividing heads")
    inter = cfg.intermediate_size or _llama_intermediate(cfg.hidden_size)
    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=cfg.hidden_size,
        intermediate_size=inter,
        num_hidden_layers=cfg.layers,
        num_attention_heads=cfg.heads,
        num_key_value_heads=kv,
        max_position_embeddings=cfg.max_position,
        rms_norm_eps=1e-5,
        rope_theta=cfg.rope_theta,
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def _llama_intermediate(hidden: int) -> int:
    """LLaMA's MLP width: 2/3 of 4h, rounded up to a multiple of 32 (11008 for h=4096 uses 256)."""
    inter = int(2 * 4 * hidden / 3)
    return (inter + 31) // 32 * 32


def init_model(cfg: InitConfig) -> Path:
    """Write a random LLaMA model with ``cfg``'s shape and the tokenizer's vocabulary to ``cfg.out``."""
    import torch
    from transformers import GenerationConfig, LlamaForCausalLM

    from ..tokenizer.chat import set_chat_template
    from ..tokenizer.hf import copy_tokenizer_files
    from ..tokenizer.load import load_tokenizer

    tokenizer = load_tokenizer(cfg.tokenizer)
    config = llama_config(len(tokenizer), cfg, tokenizer)
    torch.manual_seed(cfg.seed)
    model = LlamaForCausalLM(config)
    with atomic_dir(cfg.out, cfg.overwrite) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        GenerationConfig(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id).save_pretrained(tmp)
        copy_tokenizer_files(cfg.tokenizer, tmp)
        set_chat_template(tmp)
    return Path(cfg.out)

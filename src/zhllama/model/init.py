"""A randomly initialised model of a registered family (LLaMA, Qwen2, Qwen3) in Hugging Face format."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..config import option
from ..errors import ZhllamaError
from ..io import atomic_dir


@dataclass(kw_only=True)
class ModelShape:
    """The shape of a model: ``model init`` options and the pipeline's ``base:`` section."""

    family: str = option("model family: llama, qwen2 or qwen3 (see docs/families.md)", "llama")
    hidden_size: int = option("hidden size", 256, low=1)
    layers: int = option("transformer layers", 4, low=1)
    heads: int = option("attention heads", 4, low=1)
    kv_heads: int | None = option("key/value heads (GQA); default = heads", None, low=1)
    intermediate_size: int | None = option("MLP width; default LLaMA's 8h/3", None, low=1)
    max_position: int = option("longest context in tokens", 2048, low=2)
    rope_theta: float = option("RoPE base frequency", 10000.0, positive=True)
    llama3_rope_factor: float | None = option("Llama-3.1's RoPE scaling (rope_type llama3) by this factor over an "
                                              "original context of max_position / factor tokens", None, positive=True)


@dataclass(kw_only=True)
class InitConfig(ModelShape):
    """``zhllama model init``: its options, and the argument of :func:`init_model`."""

    tokenizer: str = option("tokenizer folder (from `zhllama tokenizer merge`)")
    seed: int = option("seed of the random weights", 0)
    out: str = option("output folder")
    overwrite: bool = option("replace an existing output folder", False)


def model_config(vocab_size: int, cfg: InitConfig, tokenizer):
    """The transformers config of ``cfg.family`` with ``cfg``'s shape (refused before anything is built)."""
    import transformers

    from .families import get_family

    family = get_family(cfg.family)
    if cfg.hidden_size % cfg.heads:
        raise ZhllamaError(f"--hidden-size {cfg.hidden_size} is not divisible by --heads {cfg.heads}",
                           "choose heads that divide the hidden size")
    kv = cfg.kv_heads or cfg.heads
    if cfg.heads % kv:
        raise ZhllamaError(f"--heads {cfg.heads} is not divisible by --kv-heads {kv}", "choose kv-heads dividing heads")
    inter = cfg.intermediate_size or _llama_intermediate(cfg.hidden_size)
    rope = {"rope_type": "default", "rope_theta": cfg.rope_theta}
    if cfg.llama3_rope_factor:
        if "llama3" not in family.rope_types:
            raise ZhllamaError(f"--llama3-rope-factor is for the llama family, not {family.name}", "drop it")
        rope = {"rope_type": "llama3", "factor": cfg.llama3_rope_factor, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                "original_max_position_embeddings": max(1, int(cfg.max_position / cfg.llama3_rope_factor)),
                "rope_theta": cfg.rope_theta}
    return getattr(transformers, family.config_class)(
        vocab_size=vocab_size,
        hidden_size=cfg.hidden_size,
        intermediate_size=inter,
        num_hidden_layers=cfg.layers,
        num_attention_heads=cfg.heads,
        num_key_value_heads=kv,
        head_dim=cfg.hidden_size // cfg.heads,
        max_position_embeddings=cfg.max_position,
        rope_parameters=rope,
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **family.init_options,
    )


def _llama_intermediate(hidden: int) -> int:
    """LLaMA's MLP width: 2/3 of 4h, rounded up to a multiple of 32 (11008 for h=4096 uses 256)."""
    inter = int(2 * 4 * hidden / 3)
    return (inter + 31) // 32 * 32


def init_model(cfg: InitConfig) -> Path:
    """Write a random model of ``cfg.family`` with ``cfg``'s shape and the tokenizer's vocabulary to ``cfg.out``."""
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig

    from .families import resolve_template
    from ..tokenizer.chat import set_chat_template
    from ..tokenizer.hf import copy_tokenizer_files
    from ..tokenizer.load import load_tokenizer

    tokenizer = load_tokenizer(cfg.tokenizer)
    config = model_config(len(tokenizer), cfg, tokenizer)
    torch.manual_seed(cfg.seed)
    model = AutoModelForCausalLM.from_config(config)
    with atomic_dir(cfg.out, cfg.overwrite) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        GenerationConfig(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id).save_pretrained(tmp)
        copy_tokenizer_files(cfg.tokenizer, tmp)
        set_chat_template(tmp, resolve_template(tmp))
    return Path(cfg.out)

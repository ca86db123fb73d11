"""Hyper-parameters from a Hugging Face ``config.json``, written as the GGUF ``<arch>.*`` keys llama.cpp reads.

The config is read as plain JSON (not through transformers) so that export works on any folder a
checkpoint of a registered family (``zhllama.model.families``) was saved in, whichever
transformers version wrote it: older configs carry ``rope_theta`` / ``rope_scaling``,
transformers 5 writes ``rope_parameters``.  LLaMA, Qwen2 and Qwen3 share the key set; the
architecture name in front of each key is the family's GGUF architecture.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import ZhllamaError
from ..io import read_json
from ..model.families import Family, family_of_config


@dataclass
class HParams:
    family: Family
    hidden_size: int
    layers: int
    heads: int
    kv_heads: int
    intermediate_size: int
    context_length: int
    rms_eps: float
    head_dim: int
    rope_theta: float
    rope_scaling: dict | None
    tie_word_embeddings: bool
    bos_token_id: int | None
    eos_token_id: int | None
    pad_token_id: int | None


def read_config(model_dir: Path) -> dict:
    path = model_dir / "config.json"
    if not path.is_file():
        hint = ("this is a LoRA adapter: merge it into its base model first (zhllama merge)"
                if (model_dir / "adapter_config.json").is_file() else "give a Hugging Face model folder")
        raise ZhllamaError(f"no config.json in {model_dir}", hint)
    return read_json(path, "re-save the model folder")


def _first_id(value) -> int | None:
    if isinstance(value, list):
        return int(value[0]) if value else None
    return None if value is None else int(value)


def _rope(config: dict) -> tuple[float, dict | None]:
    """(rope base, scaling dict or None) from either config layout."""
    params = config.get("rope_parameters") or {}
    theta = params.get("rope_theta", config.get("rope_theta", 10000.0))
    scaling = config.get("rope_scaling") or None
    if scaling is None and params.get("rope_type", "default") != "default":
        scaling = params
    return float(theta), scaling


def check_gguf_architecture(family: Family, where: Path) -> None:
    """The family's GGUF architecture must be one the installed ``gguf`` package (llama.cpp's) knows."""
    import gguf

    if not family.gguf_arch or family.gguf_arch not in gguf.MODEL_ARCH_NAMES.values():
        raise ZhllamaError(f"{where}/config.json: llama.cpp has no architecture for the {family.name} family "
                           f"({family.model_class})", "export a family llama.cpp runs (see docs/families.md)")


def model_hparams(config: dict, where: Path) -> HParams:
    """Check that ``config`` is a model of a family llama.cpp runs and pull out what the GGUF header needs."""
    family = family_of_config(config, f"{where}/config.json")
    check_gguf_architecture(family, where)
    try:
        hidden, heads = int(config["hidden_size"]), int(config["num_attention_heads"])
        theta, scaling = _rope(config)
        return HParams(
            family=family, hidden_size=hidden, layers=int(config["num_hidden_layers"]), heads=heads,
            kv_heads=int(config.get("num_key_value_heads") or heads),
            intermediate_size=int(config["intermediate_size"]),
            context_length=int(config.get("max_position_embeddings") or 2048),
            rms_eps=float(config.get("rms_norm_eps", 1e-6)),
            head_dim=int(config.get("head_dim") or hidden // heads),
            rope_theta=theta, rope_scaling=scaling,
            tie_word_embeddings=bool(config.get("tie_word_embeddings", False)),
            bos_token_id=_first_id(config.get("bos_token_id")),
            eos_token_id=_first_id(config.get("eos_token_id")),
            pad_token_id=_first_id(config.get("pad_token_id")),
        )
    except KeyError as e:
        raise ZhllamaError(f"{where}/config.json: missing field {e.args[0]!r}", "re-save the model folder") from None


def add_model_keys(writer, hp: HParams, vocab_size: int) -> None:
    """The ``<arch>.*`` keys llama.cpp reads for the llama, qwen2 and qwen3 architectures."""
    writer.add_vocab_size(vocab_size)
    writer.add_context_length(hp.context_length)
    writer.add_embedding_length(hp.hidden_size)
    writer.add_block_count(hp.layers)
    writer.add_feed_forward_length(hp.intermediate_size)
    writer.add_head_count(hp.heads)
    writer.add_head_count_kv(hp.kv_heads)
    writer.add_layer_norm_rms_eps(hp.rms_eps)
    writer.add_rope_dimension_count(hp.head_dim)
    writer.add_rope_freq_base(hp.rope_theta)
    if hp.head_dim != hp.hidden_size // hp.heads:
        writer.add_key_length(hp.head_dim)
        writer.add_value_length(hp.head_dim)
    if hp.rope_scaling:
        _add_rope_scaling(writer, hp)


def _add_rope_scaling(writer, hp: HParams) -> None:
    from gguf import RopeScalingType

    scaling = hp.rope_scaling
    kind = scaling.get("rope_type") or scaling.get("type")
    factor = scaling.get("factor")
    if kind in hp.family.rope_types:
        return  # llama3: carried by the rope_freqs tensor (see llama3_rope_factors), no scaling keys
    if kind == "linear" and factor:
        writer.add_rope_scaling_type(RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(float(factor))
    elif kind == "yarn" and factor:
        writer.add_rope_scaling_type(RopeScalingType.YARN)
        writer.add_rope_scaling_factor(float(factor))
        if scaling.get("original_max_position_embeddings"):
            writer.add_rope_scaling_orig_ctx_len(int(scaling["original_max_position_embeddings"]))
    else:
        # dynamic NTK and llama3-style scaling change the model in ways this exporter does not write;
        # exporting without them would give a file that silently computes something else.
        raise ZhllamaError(f"config.json: rope scaling {kind!r} is not supported by GGUF export",
                           "supported: linear, yarn and llama3; remove rope_scaling if the model was not trained with it")


def llama3_rope_factors(hp: HParams):
    """Llama-3.1's RoPE scaling as llama.cpp takes it: a ``rope_freqs`` tensor of per-frequency divisors.

    The same rule as transformers' ``_compute_llama3_parameters`` (and llama.cpp's converter): wavelengths
    shorter than ``original / high_freq_factor`` keep their frequency, longer than ``original /
    low_freq_factor`` are divided by ``factor``, and those between are interpolated smoothly.
    """
    import math

    import numpy as np

    s = hp.rope_scaling
    factor = float(s.get("factor", 8.0))
    low, high = float(s.get("low_freq_factor", 1.0)), float(s.get("high_freq_factor", 4.0))
    original = float(s.get("original_max_position_embeddings", 8192))
    freqs = 1.0 / (hp.rope_theta ** (np.arange(0, hp.head_dim, 2, dtype=np.float64) / hp.head_dim))
    out = []
    for freq in freqs:
        wavelen = 2 * math.pi / freq
        if wavelen < original / high:
            out.append(1.0)
        elif wavelen > original / low:
            out.append(factor)
        else:
            smooth = (original / wavelen - low) / (high - low)
            out.append(1.0 / ((1 - smooth) / factor + smooth))
    return np.asarray(out, dtype=np.float32)

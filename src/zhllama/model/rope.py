"""RoPE context extension: linear (position interpolation), dynamic NTK, YaRN.

Chinese-LLaMA-Alpaca-2 extends its 4K models to 8K+ at inference with NTK-aware scaling and ships
16K/64K models trained with linear/YaRN scaling.  transformers implements all three; this sets the
model config's ``rope_parameters`` and rebuilds the model's rotary-embedding modules from it
(they compute their frequencies once, when built), so a loaded model needs no reload.

One parser serves inference (``--rope-scaling`` of chat/generate/serve/eval) and training
(``train pt|sft --rope-scaling``, linear and yarn only).  A scaled config keeps
``max_position_embeddings`` at the original length and says ``factor`` (as Chinese-LLaMA-Alpaca-2's
16K models and transformers' YaRN expect); the usable context is their product
(:func:`scaled_context`).
"""

from __future__ import annotations

from ..errors import ZhllamaError

ROPE_TYPES = {"linear": "linear", "ntk": "dynamic", "dynamic": "dynamic", "yarn": "yarn"}
SPEC_NAMES = {"linear": "linear", "dynamic": "ntk", "yarn": "yarn"}  # rope_type -> the kind a spec names


def parse_rope_scaling(spec: str, kinds: tuple[str, ...] = tuple(ROPE_TYPES)) -> tuple[str, float]:
    """``linear:2``, ``ntk:4`` (dynamic NTK), ``yarn:4`` -> (transformers rope_type, factor).

    ``kinds``: the kinds allowed where the spec is used (training takes linear and yarn only).
    """
    kind, _, factor = str(spec).partition(":")
    if kind.lower() not in kinds:
        raise ZhllamaError(f"--rope-scaling '{spec}': unknown kind '{kind}'",
                           f"use {', '.join(k + ':F' for k in kinds if k != 'dynamic')}, e.g. {kinds[0]}:2")
    try:
        value = float(factor)
    except ValueError:
        raise ZhllamaError(f"--rope-scaling '{spec}': the factor must be a number", f"e.g. {kind}:2") from None
    if not value > 1.0 or value == float("inf"):
        raise ZhllamaError(f"--rope-scaling '{spec}': the factor must be above 1", f"e.g. {kind}:2 doubles the context")
    return ROPE_TYPES[kind.lower()], value


def rope_parameters(config, spec: str) -> dict:
    """The ``rope_parameters`` dict that ``spec`` gives a model with ``config`` (refused when already scaled)."""
    rope_type, factor = parse_rope_scaling(spec)
    current = dict(getattr(config, "rope_parameters", None) or {})
    if current.get("rope_type", "default") != "default":
        raise ZhllamaError(f"the model already uses {current['rope_type']} RoPE scaling", "drop --rope-scaling")
    theta = current.get("rope_theta", getattr(config, "rope_theta", 10000.0))
    params = {"rope_type": rope_type, "factor": factor, "rope_theta": theta}
    if rope_type == "yarn":
        params["original_max_position_embeddings"] = int(config.max_position_embeddings)
    return params


def apply_rope_scaling(model, spec: str) -> int:
    """Scale the model's RoPE as ``spec`` says; return the extended context length (tokens)."""
    config = model.config
    config.rope_parameters = rope_parameters(config, spec)
    rebuilt = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child).__name__.endswith("RotaryEmbedding"):
                device = next(iter(child.buffers())).device
                setattr(parent, name, type(child)(config=config).to(device))
                rebuilt += 1
    if not rebuilt:
        raise ZhllamaError(f"{type(model).__name__} has no rotary embedding to scale", "--rope-scaling is for LLaMA-family models")
    return scaled_context(config)


def canonical_spec(spec: str) -> str:
    """``YaRN:4.0`` -> ``yarn:4``; ``dynamic:2`` -> ``ntk:2`` (the form recorded in zhllama.json)."""
    rope_type, factor = parse_rope_scaling(spec)
    return f"{SPEC_NAMES[rope_type]}:{factor:g}"


def scaled_context(config) -> int:
    """Tokens the model is meant to take: ``max_position_embeddings`` times the RoPE factor when scaled."""
    positions = int(getattr(config, "max_position_embeddings", 0) or 0)
    rope = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
    if rope.get("rope_type", rope.get("type")) not in SPEC_NAMES:  # unscaled, or llama3/longrope: already extended
        return positions
    original = int(rope.get("original_max_position_embeddings") or positions)
    return max(positions, int(original * max(float(rope.get("factor") or 1.0), 1.0)))

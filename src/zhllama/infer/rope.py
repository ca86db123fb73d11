"""RoPE context extension at inference: linear (position interpolation), dynamic NTK, YaRN.

Chinese-LLaMA-Alpaca-2 extends its 4K models to 8K+ at inference with NTK-aware scaling and ships
16K/64K models trained with linear/YaRN scaling.  transformers implements all three; this sets the
model config's ``rope_parameters`` and rebuilds the model's rotary-embedding modules from it
(they compute their frequencies once, when built), so a loaded model needs no reload.
"""

from __future__ import annotations

from ..errors import ZhllamaError

ROPE_TYPES = {"linear": "linear", "ntk": "dynamic", "dynamic": "dynamic", "yarn": "yarn"}


def parse_rope_scaling(spec: str) -> tuple[str, float]:
    """``linear:2``, ``ntk:4`` (dynamic NTK), ``yarn:4`` -> (transformers rope_type, factor)."""
    kind, _, factor = spec.partition(":")
    if kind.lower() not in ROPE_TYPES:
        raise ZhllamaError(f"--rope-scaling '{spec}': unknown kind '{kind}'", "use linear:F, ntk:F or yarn:F, e.g. ntk:2")
    try:
        value = float(factor)
    except ValueError:
        raise ZhllamaError(f"--rope-scaling '{spec}': the factor must be a number", "e.g. linear:2") from None
    if value <= 1.0:
        raise ZhllamaError(f"--rope-scaling '{spec}': the factor must be above 1", "e.g. ntk:2 doubles the context")
    return ROPE_TYPES[kind.lower()], value


def apply_rope_scaling(model, spec: str) -> int:
    """Scale the model's RoPE as ``spec`` says; return the extended context length (tokens)."""
    rope_type, factor = parse_rope_scaling(spec)
    config = model.config
    original = int(config.max_position_embeddings)
    current = dict(getattr(config, "rope_parameters", None) or {})
    if current.get("rope_type", "default") != "default":
        raise ZhllamaError(f"the model already uses {current['rope_type']} RoPE scaling", "drop --rope-scaling")
    theta = current.get("rope_theta", getattr(config, "rope_theta", 10000.0))
    params = {"rope_type": rope_type, "factor": factor, "rope_theta": theta}
    if rope_type == "yarn":
        params["original_max_position_embeddings"] = original
    config.rope_parameters = params
    rebuilt = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child).__name__.endswith("RotaryEmbedding"):
                device = next(iter(child.buffers())).device
                setattr(parent, name, type(child)(config=config).to(device))
                rebuilt += 1
    if not rebuilt:
        raise ZhllamaError(f"{type(model).__name__} has no rotary embedding to scale", "--rope-scaling is for LLaMA-family models")
    return int(original * factor)

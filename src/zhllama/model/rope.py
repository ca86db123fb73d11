"""RoPE context extension: linear (position interpolation), dynamic NTK, YaRN.

Chinese-LLaMA-Alpaca-2 extends its 4K models to 8K+ at inference with NTK-aware scaling and ships
16K/64K models trained with linear/YaRN scaling.  transformers implements all three; this sets the
model config's ``rope_parameters`` and rebuilds the model's rotary-embedding modules from it
(they compute their frequencies once, when built), so a loaded model needs no reload.

The scaling is a :class:`zhllama.rope_scaling.RopeScaling` value, parsed once where it enters
(``--rope-scaling`` of chat/generate/serve/eval and ``train pt|sft``, where training takes linear and
yarn only; a recipe key; an adapter's zhllama.json).  A scaled config keeps
``max_position_embeddings`` at the original length and says ``factor`` (as Chinese-LLaMA-Alpaca-2's
16K models and transformers' YaRN expect); the usable context is their product
(:func:`scaled_context`).
"""

from __future__ import annotations

from ..errors import ZhllamaError
from ..rope_scaling import RopeScaling


def rope_parameters(config, scaling: RopeScaling) -> dict:
    """The ``rope_parameters`` dict that ``scaling`` gives a model with ``config`` (refused when already scaled)."""
    current = dict(getattr(config, "rope_parameters", None) or {})
    if current.get("rope_type", "default") != "default":
        raise ZhllamaError(f"the model already uses {current['rope_type']} RoPE scaling", "drop --rope-scaling")
    theta = current.get("rope_theta", getattr(config, "rope_theta", 10000.0))
    params = {"rope_type": scaling.rope_type, "factor": scaling.factor, "rope_theta": theta}
    if scaling.rope_type == "yarn":
        params["original_max_position_embeddings"] = int(config.max_position_embeddings)
    return params


def apply_rope_scaling(model, scaling: RopeScaling) -> int:
    """Scale the model's RoPE as ``scaling`` says; return the extended context length (tokens)."""
    config = model.config
    config.rope_parameters = rope_parameters(config, scaling)
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


def config_rope(config) -> dict:
    """The config's RoPE dict: ``rope_parameters`` (transformers 5) or ``rope_scaling`` (older configs)."""
    return dict(getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {})


def scaled_context(config) -> int:
    """Tokens the model is meant to take: ``max_position_embeddings`` times the RoPE factor when scaled."""
    positions = int(getattr(config, "max_position_embeddings", 0) or 0)
    rope = config_rope(config)
    scaling = RopeScaling.of_parameters(rope)
    if scaling is None:  # unscaled, or llama3/longrope: already extended
        return positions
    original = int(rope.get("original_max_position_embeddings") or positions)
    return max(positions, int(original * max(scaling.factor, 1.0)))

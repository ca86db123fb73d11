"""Precision and DeepSpeed choices: bf16/fp16 on GPU, fp32 on CPU."""

from __future__ import annotations

import importlib.util
from importlib import resources
from pathlib import Path

from ..errors import ZhllamaError, require_file

SHIPPED_DEEPSPEED = {"zero2": "ds_zero2.json", "zero3": "ds_zero3.json"}


def resolve_precision(requested: str) -> str:
    """``auto`` -> bf16 on a GPU that has it, fp16 on an older GPU, fp32 on CPU."""
    import torch

    cuda = torch.cuda.is_available()
    if requested == "auto":
        if not cuda:
            return "fp32"
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if requested in ("bf16", "fp16") and not cuda:
        raise ZhllamaError(f"precision {requested} needs a CUDA GPU and none is visible",
                           "use precision: auto (fp32 on CPU) or run on a GPU machine")
    if requested == "bf16" and not torch.cuda.is_bf16_supported():
        raise ZhllamaError("this GPU has no bf16 support", "use precision: fp16")
    return requested


def load_dtype(precision: str, full: bool, deepspeed: str | None):
    """dtype to load the base model in.

    Full training without DeepSpeed keeps fp32 master weights (AMP casts on the fly); LoRA freezes
    the base, so it is loaded in half precision like upstream's scripts; DeepSpeed keeps its own
    fp32 optimizer copy, so the model is loaded in half precision there too.
    """
    import torch

    half = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    if half is None or (full and not deepspeed):
        return torch.float32
    return half


def resolve_deepspeed(value: str | None) -> str | None:
    """A DeepSpeed JSON path, or ``zero2`` / ``zero3`` for the configs shipped with zhllama."""
    if not value:
        return None
    if importlib.util.find_spec("deepspeed") is None:
        raise ZhllamaError("--deepspeed was given but DeepSpeed is not installed",
                           "pip install 'zhllama[deepspeed]' on the GPU machine")
    if value in SHIPPED_DEEPSPEED:
        return str(shipped_config(value))
    return str(require_file(value, "DeepSpeed config"))


def shipped_config(name: str) -> Path:
    return Path(str(resources.files("zhllama.train").joinpath("deepspeed", SHIPPED_DEEPSPEED[name])))

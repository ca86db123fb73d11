"""Variants of the tiny test model for export tests (copies; the session fixture is never modified)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file


def copy_model(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def edit_weights(model_dir: Path, edit) -> None:
    """Apply ``edit(dict of tensors) -> dict of tensors`` to model.safetensors."""
    path = model_dir / "model.safetensors"
    save_file(edit(load_file(str(path))), str(path), metadata={"format": "pt"})


def edit_config(model_dir: Path, **fields) -> None:
    path = model_dir / "config.json"
    cfg = json.loads(path.read_text())
    cfg.update(fields)
    path.write_text(json.dumps(cfg, indent=2))


def sharpen(tensors: dict) -> dict:
    """Scale Q/K and the output layer so attention is peaked and logits are spread out.

    A freshly initialised model (std 0.02) attends almost uniformly, so RoPE, and a wrong Q/K
    permutation, would barely change its logits; the export check would then prove little.
    """
    out = {}
    for name, t in tensors.items():
        if name.endswith(("q_proj.weight", "k_proj.weight")):
            t = t * 12.0
        elif name.endswith(("lm_head.weight", "embed_tokens.weight")):
            t = t * 10.0
        out[name] = t.contiguous()
    return out


def pad_vocab(rows: int):
    """An edit that pads embed_tokens / lm_head to ``rows`` rows (as a vocabulary padded to 64 is)."""
    def edit(tensors: dict) -> dict:
        out = dict(tensors)
        for name in ("model.embed_tokens.weight", "lm_head.weight"):
            t = tensors[name]
            out[name] = torch.cat([t, torch.zeros(rows - t.shape[0], t.shape[1], dtype=t.dtype)]).contiguous()
        return out
    return edit

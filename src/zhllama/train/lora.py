"""LoRA adapters with peft, and a check that a saved adapter really holds what was trained."""

from __future__ import annotations

import difflib
import logging
from pathlib import Path

from ..errors import ZhllamaError
from ..model.load import read_adapter_shapes

log = logging.getLogger(__name__)

EMBEDDING_MODULES = ("embed_tokens", "lm_head")


def module_leaf_names(model) -> set[str]:
    return {name.rsplit(".", 1)[-1] for name, _ in model.named_modules() if name}


def check_modules_exist(model, names: list[str], field: str) -> None:
    leaves = module_leaf_names(model)
    for name in names:
        if name not in leaves:
            near = difflib.get_close_matches(name, sorted(leaves), n=1, cutoff=0.5)
            hint = f"did you mean '{near[0]}'?" if near else "see model.named_modules() for valid names"
            raise ZhllamaError(f"{field}: the model has no module named '{name}'", hint)


def modules_to_save_for(requested: list[str], resized: bool, untrained_rows: bool = False) -> list[str]:
    """New embedding rows must be trained and saved, so a resize adds embed_tokens and lm_head.

    ``untrained_rows``: the model itself is the output of ``zhllama model resize`` (its
    ``zhllama.json`` says so), whose new rows were initialised but never trained; the seeds' LoRA
    pre-training passes ``--modules_to_save embed_tokens,lm_head`` for exactly this case, and without
    it LoRA would leave the Chinese tokens' rows at their initial values."""
    out = list(requested)
    why = "vocabulary was resized" if resized else "the model's new rows from `zhllama model resize` are untrained"
    if resized or untrained_rows:
        for name in EMBEDDING_MODULES:
            if name not in out:
                log.info("%s: training and saving '%s' fully (modules_to_save)", why, name)
                out.append(name)
    return out


def lora_config(model, rank: int, alpha: float, dropout: float, targets: list[str], modules_to_save: list[str],
                task_type: str = "CAUSAL_LM"):
    """peft's ``LoraConfig`` for ``model``, after checking that the named modules exist.

    ``task_type`` SEQ_CLS (a reward model) also trains and saves the score head.
    """
    from peft import LoraConfig

    check_modules_exist(model, targets, "lora_target_modules")
    check_modules_exist(model, modules_to_save, "modules_to_save")
    return LoraConfig(task_type=task_type, r=rank, lora_alpha=alpha, lora_dropout=dropout,
                      target_modules=list(targets), modules_to_save=list(modules_to_save) or None)


def apply_lora(model, rank: int, alpha: float, dropout: float, targets: list[str], modules_to_save: list[str],
               task_type: str = "CAUSAL_LM"):
    """Wrap ``model`` with peft LoRA; trainable parameters are kept in fp32 for mixed precision."""
    import torch
    from peft import get_peft_model

    config = lora_config(model, rank, alpha, dropout, targets, modules_to_save, task_type)
    peft_model = get_peft_model(model, config)
    _save_embeddings_once(peft_model)
    for p in peft_model.parameters():
        if p.requires_grad and p.dtype != torch.float32:
            p.data = p.data.float()  # AMP's grad scaler refuses half-precision trainable weights
    return peft_model


def _save_embeddings_once(peft_model) -> None:
    """Stop peft from also saving the resized embedding layers next to their modules_to_save copy.

    With ``save_embedding_layers="auto"`` peft notices the resize and writes the embedding and head
    again (original and trained copies: three times their size).  Here a resized vocabulary is always
    trained through ``modules_to_save``, which already holds every row, so the extra copies are
    dropped.  The Trainer calls ``save_pretrained`` itself, hence the bound default.
    """
    import functools

    peft_model.save_pretrained = functools.partial(peft_model.save_pretrained, save_embedding_layers=False)


def count_parameters(model) -> dict:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"trainable": trainable, "total": total, "trainable_fraction": trainable / max(total, 1)}


def verify_saved_adapter(adapter_dir: str | Path, peft_model) -> None:
    """Every trained tensor must be in the saved file with its full shape.

    Upstream users got adapter files of a few hundred bytes (empty tensors) when a ZeRO-3
    partitioned state dict was saved; this catches that before the run reports success.
    """
    shapes = read_adapter_shapes(adapter_dir)
    expected = {}
    for name, p in peft_model.named_parameters():
        if p.requires_grad:
            full = tuple(getattr(p, "ds_shape", p.shape))  # ZeRO-3 keeps the real shape in ds_shape
            expected[saved_key(name)] = full
    for key, shape in expected.items():
        if shapes.get(key) != shape:
            raise ZhllamaError(
                f"{adapter_dir}: trained tensor {key} was saved with shape {shapes.get(key)}, expected {shape}",
                "under DeepSpeed ZeRO-3 set stage3_gather_16bit_weights_on_model_save: true (the shipped zero3 config does)")


def saved_key(param_name: str, adapter: str = "default") -> str:
    """peft's key in adapter_model.safetensors for a parameter name of the live PeftModel."""
    return param_name.replace(f".modules_to_save.{adapter}", "").replace(f".{adapter}.", ".")

"""Training bigger models on the same hardware: QLoRA, FSDP and the attention kernel.

* ``qlora``: the base is loaded in 4-bit NF4 with double quantization (bitsandbytes) onto this
  process's device, its embeddings and head (and every module in ``modules_to_save``) left
  unquantized, then peft's ``prepare_model_for_kbit_training`` casts those to fp32 and freezes the
  rest before LoRA is put on top: the recipe of Chinese-LLaMA-Alpaca-2's ``--load_in_kbits 4``.
* ``fsdp``: PyTorch FSDP2 through the Trainer's accelerate integration; each decoder layer is one
  shard unit (the model's ``_no_split_modules``).  The same command runs under torchrun on one
  machine or several.
"""

from __future__ import annotations

import os

from .config import TrainConfig


def training_device() -> str:
    """This process's device: its local rank's GPU under a launcher, else the CPU."""
    import torch

    if torch.cuda.is_available():
        return f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
    return "cpu"


def check_hardware(cfg: TrainConfig) -> None:
    """bitsandbytes and flash-attn must be usable on this process's device, before the model is read."""
    from ..model.quantize import check_attn, check_quantize

    device = training_device()
    check_quantize("4bit" if cfg.qlora else None, device)
    check_attn(cfg.attn, device)


def loading_options(cfg: TrainConfig, keep: list[str]) -> dict:
    """``load_causal_lm`` keyword arguments for the base model."""
    options: dict = {"attn": cfg.attn}
    if cfg.qlora:
        options.update(quantize="4bit", device=training_device(), keep=list(keep))
    return options


def prepare_qlora(model, gradient_checkpointing: bool):
    """Freeze the 4-bit base, cast its unquantized modules (norms, embeddings, head) to fp32."""
    from peft import prepare_model_for_kbit_training

    return prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing,
                                           gradient_checkpointing_kwargs={"use_reentrant": False})


def fsdp_arguments(mode: str | None) -> dict:
    """TrainingArguments for FSDP2: ``full_shard`` re-shards parameters after each forward, ``shard_grad_op`` not."""
    if not mode:
        return {}
    return {"fsdp": True, "fsdp_config": {"version": 2, "reshard_after_forward": mode == "full_shard",
                                          "auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
                                          "state_dict_type": "FULL_STATE_DICT"}}

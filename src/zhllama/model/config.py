"""``LoadConfig``: how a model is loaded, the one schema of the options every command that loads a model
shares (``--model``, ``--lora``, ``--device``, ``--dtype``, ``--quantize``, ``--attn``).

``zhllama.infer.config.EngineConfig`` (chat, generate, serve, webui) extends it with what generation
adds (template, context, RoPE scaling, a draft model); ``zhllama.eval.config.EvalModel`` (eval ppl,
mc, compare, passkey) is it with eval's wording of ``--model``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Literal

from ..config import option

Quantize = Literal["8bit", "4bit"]
Attention = Literal["sdpa", "eager", "flash_attention_2"]


def device_option() -> str:
    """``--device``, declared once: :class:`LoadConfig` and every other schema that places a model
    (eval compare, report, reward) take their field from here."""
    return option("auto, cpu, cuda, cuda:1, mps", "auto")


def dtype_option() -> str:
    """``--dtype``, declared once (see :func:`device_option`); resolved by
    :func:`zhllama.model.load.resolve_dtype`."""
    return option("auto (bf16/fp16 on GPU, fp32 on CPU), float32, bfloat16, float16", "auto")


@dataclass(kw_only=True)
class LoadConfig:
    """Which model to load, with which adapter, where and how (:func:`zhllama.model.load.load_model`'s options)."""

    model: str = option("model folder (Hugging Face format) or hub id")
    lora: str | None = option("a LoRA adapter folder applied on top of --model (not merged)", None)
    device: str = device_option()
    dtype: str = dtype_option()
    quantize: Quantize | None = option("load the linear layers quantized with bitsandbytes (LLM.int8 or NF4); needs "
                                       "bitsandbytes", None)
    attn: Attention | None = option(
        "attention kernel (default: transformers' choice, sdpa); flash_attention_2 needs flash-attn and a CUDA GPU", None)

    def load_options(self) -> dict:
        """These options by name (a subclass's own fields left out), e.g. to build an ``EngineConfig`` from them."""
        return {f.name: getattr(self, f.name) for f in fields(LoadConfig)}

    def load_model(self):
        """``(model, tokenizer)``, loaded as these options say."""
        from .load import load_model

        return load_model(self.model, lora=self.lora, dtype=self.dtype, device=self.device, quantize=self.quantize,
                          attn=self.attn)

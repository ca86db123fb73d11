"""How a model's weights are held and its attention is computed: ``--quantize`` and ``--attn``.

* ``--quantize 8bit|4bit`` loads the linear layers through bitsandbytes (LLM.int8 or NF4 with double
  quantization), as Chinese-LLaMA-Alpaca-2's scripts do with ``--load_in_kbits``.  The embeddings
  and the output head stay in full precision (they are what a resized vocabulary trains).
* ``--attn sdpa|eager|flash_attention_2`` is transformers' ``attn_implementation``.

Both are checked here before any weights are read, so a missing package or GPU is a one-line error.
Whether bitsandbytes can quantize on the chosen device is asked of bitsandbytes itself (its CPU
backend handles 8-bit and 4-bit since the 0.4x releases), not assumed from a version number.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache

from ..errors import ZhllamaError

QUANTIZE = ("8bit", "4bit")
ATTN = ("sdpa", "eager", "flash_attention_2")
FULL_PRECISION_MODULES = ("embed_tokens", "lm_head")


def check_attn(attn: str | None, device: str) -> None:
    """``flash_attention_2`` needs the flash_attn package and a CUDA GPU."""
    if attn is None:
        return
    if attn not in ATTN:
        raise ZhllamaError(f"--attn {attn} is not one of {', '.join(ATTN)}", "use --attn sdpa (the default)")
    if attn != "flash_attention_2":
        return
    if not device.startswith("cuda"):
        raise ZhllamaError(f"--attn flash_attention_2 needs a CUDA GPU, and the model runs on {device}",
                           "use --attn sdpa, or run on a GPU machine")
    if importlib.util.find_spec("flash_attn") is None:
        raise ZhllamaError("--attn flash_attention_2 needs the flash-attn package, which is not installed",
                           "pip install flash-attn --no-build-isolation, or use --attn sdpa")


def check_quantize(quantize: str | None, device: str) -> None:
    """bitsandbytes must be installed and able to quantize on ``device``."""
    if quantize is None:
        return
    if quantize not in QUANTIZE:
        raise ZhllamaError(f"--quantize {quantize} is not one of {', '.join(QUANTIZE)}", "use --quantize 4bit or 8bit")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ZhllamaError(f"--quantize {quantize} needs bitsandbytes, which is not installed",
                           "pip install 'zhllama[quantize]' (bitsandbytes), or drop --quantize")
    problem = _bitsandbytes_problem(device.split(":")[0])
    if problem:
        raise ZhllamaError(f"--quantize {quantize}: bitsandbytes cannot quantize on {device} ({problem})",
                           "run on a CUDA GPU, or drop --quantize")


@lru_cache(maxsize=None)
def _bitsandbytes_problem(device_type: str) -> str | None:
    """None when bitsandbytes quantizes a small tensor on ``device_type``, else its first error line."""
    try:
        import torch
        from bitsandbytes.functional import quantize_4bit

        quantize_4bit(torch.ones(64, 64, device=device_type), quant_type="nf4")
    except Exception as e:  # noqa: BLE001 - any failure means "not on this device"; its text is the reason
        return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else 'no backend'}"
    return None


def quantization_config(quantize: str, compute_dtype, keep: tuple[str, ...] | list[str] = FULL_PRECISION_MODULES):
    """transformers' ``BitsAndBytesConfig``; the modules in ``keep`` stay unquantized."""
    from transformers import BitsAndBytesConfig

    skip = sorted(set(keep) | set(FULL_PRECISION_MODULES))
    if quantize == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=skip)
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=compute_dtype, llm_int8_skip_modules=skip)


def loading_arguments(quantize: str | None, attn: str | None, device: str, compute_dtype,
                      keep: tuple[str, ...] | list[str] = FULL_PRECISION_MODULES) -> dict:
    """Extra ``from_pretrained`` arguments; a quantized model is placed on ``device`` as it is loaded."""
    kwargs: dict = {}
    if attn:
        kwargs["attn_implementation"] = attn
    if quantize:
        kwargs["quantization_config"] = quantization_config(quantize, compute_dtype, keep)
        kwargs["device_map"] = {"": device}
    return kwargs


def is_quantized(model) -> bool:
    return bool(getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_loaded_in_8bit", False)
                or getattr(model, "is_quantized", False))

"""``GgufConfig``: the options of ``zhllama export gguf``; ``GgufSettings`` is the pipeline's ``export:`` section.

Kept apart from ``gguf.py`` so that reading a recipe or building ``--help`` does not import the
``gguf`` package."""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Literal

from ..config import option

OutType = Literal["f32", "f16", "bf16", "q8_0", "q4_0", "q6_k", "q5_k_m", "q4_k_m"]
OUTTYPES = typing.get_args(OutType)


@dataclass(kw_only=True)
class GgufSettings:
    outtype: OutType = option("weight type: f32 (exact), f16, bf16, q8_0 (8.5 bits/weight), q4_0 (4.5 bits/weight); "
                              "the k-quants q6_k, q5_k_m, q4_k_m (llama.cpp's mixtures; need llama-cpp-python and "
                              "rows divisible by 256)", "f16")


@dataclass(kw_only=True)
class GgufConfig(GgufSettings):
    """``zhllama export gguf``: ``export_gguf(**asdict(cfg))`` runs it."""

    model: str = option("model folder (config.json, *.safetensors, tokenizer.model)")
    out: str = option("GGUF file to write, e.g. zh-alpaca-q8_0.gguf")
    name: str | None = option("general.name stored in the file (default: the folder name)", None)
    overwrite: bool = option("replace an existing output file", False)
    imatrix: str | None = option("k-quants: an importance matrix (llama.cpp's llama-imatrix output) that weights the "
                                 "rounding; needs llama.cpp's llama-quantize on PATH", None)

"""Reading checkpoint tensors one at a time and turning them into GGUF tensors.

Tensors are streamed: shapes are read from the safetensors headers first (so the GGUF header can
be written), then each tensor is loaded, converted and written before the next one is touched, so
exporting a 13B model needs memory for one tensor, not for the model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import ZhllamaError
from .config import OUTTYPES


@dataclass
class PlannedTensor:
    hf_name: str | None  # None: computed at export (``data``), not read from the checkpoint
    gguf_name: str
    shape: tuple[int, ...]  # row-major, as in the checkpoint
    qtype: object  # gguf.GGMLQuantizationType
    permute_heads: int | None  # Q/K projections of the llama architecture: heads to permute by
    data: np.ndarray | None = None


class CheckpointReader:
    """Lazy access to the tensors of a model folder (single or sharded safetensors, or .bin)."""

    def __init__(self, model_dir: Path):
        self.model_dir = model_dir
        self.files = self._weight_files(model_dir)
        self._where: dict[str, Path] = {}
        self._shapes: dict[str, tuple[int, ...]] = {}
        self._bin_cache: dict[Path, dict] = {}
        for f in self.files:
            for name, shape in self._headers(f):
                self._where[name], self._shapes[name] = f, shape

    @staticmethod
    def _weight_files(model_dir: Path) -> list[Path]:
        for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
            index = model_dir / index_name
            if index.is_file():
                files = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
                missing = [f for f in files if not (model_dir / f).is_file()]
                if missing:
                    raise ZhllamaError(f"{index} names {missing[0]}, which is not in the folder",
                                       "the download or save is incomplete; copy the missing shard")
                return [model_dir / f for f in files]
        for single in ("model.safetensors", "pytorch_model.bin"):
            if (model_dir / single).is_file():
                return [model_dir / single]
        raise ZhllamaError(f"{model_dir} has no model weights (model.safetensors or pytorch_model.bin)",
                           "give a Hugging Face model folder (e.g. the output of zhllama merge)")

    def _headers(self, f: Path) -> Iterator[tuple[str, tuple[int, ...]]]:
        if f.suffix == ".safetensors":
            from safetensors import safe_open

            try:
                with safe_open(str(f), framework="pt") as st:
                    for name in st.keys():
                        yield name, tuple(st.get_slice(name).get_shape())
            except Exception as e:  # safetensors raises its own error types on a corrupt header
                raise ZhllamaError(f"{f} is not a readable safetensors file ({e})", "re-save the model folder") from None
        else:
            for name, t in self._load_bin(f).items():
                yield name, tuple(t.shape)

    def _load_bin(self, f: Path) -> dict:
        """A pickled checkpoint, memory-mapped so that only the tensors touched are read (one shard
        is kept open at a time)."""
        if f not in self._bin_cache:
            import torch

            self._bin_cache = {f: torch.load(str(f), map_location="cpu", mmap=True, weights_only=True)}
        return self._bin_cache[f]

    def names(self) -> list[str]:
        return list(self._shapes)

    def shape(self, name: str) -> tuple[int, ...]:
        return self._shapes[name]

    def load(self, name: str) -> np.ndarray:
        """One tensor as float32 NumPy (bf16 checkpoints go through torch: NumPy has no bf16)."""
        f = self._where[name]
        if f.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(f), framework="pt") as st:
                t = st.get_tensor(name)
        else:
            t = self._load_bin(f)[name]
        return t.float().numpy()


def permute_qk(w: np.ndarray, n_heads: int) -> np.ndarray:
    """Reorder the rows of a Q or K projection from Hugging Face's rotate-half layout to the
    interleaved pairs llama.cpp's RoPE rotates.

    In each head, HF pairs row ``j`` with row ``j + d/2``; llama.cpp pairs rows ``2j`` and ``2j+1``.
    This is the inverse of the permutation transformers' convert_llama_weights_to_hf applies.
    """
    rows = w.shape[0]
    return w.reshape(n_heads, 2, rows // n_heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def tensor_qtype(gguf_name: str, shape: tuple[int, ...], outtype: str):
    """The GGML type a tensor is stored as for ``outtype``.

    1-D tensors (norms) stay f32, as in llama.cpp's converter.  A matrix whose rows do not split
    into whole quantization blocks falls back to f16.  With q4_0 the output projection is kept at
    q8_0: llama-quantize keeps it at q6_K, which gguf-py cannot write, and 4 bits on the output
    layer costs the most quality.
    """
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType as Q

    if len(shape) == 1 or outtype == "f32":
        return Q.F32
    wanted = {"f16": Q.F16, "bf16": Q.BF16, "q8_0": Q.Q8_0, "q4_0": Q.Q4_0}[outtype]
    if wanted == Q.Q4_0 and gguf_name == "output.weight":
        wanted = Q.Q8_0
    block = GGML_QUANT_SIZES[wanted][0]
    return wanted if shape[-1] % block == 0 else Q.F16


def stored_nbytes(shape: tuple[int, ...], qtype) -> int:
    from gguf import GGML_QUANT_SIZES

    block, type_size = GGML_QUANT_SIZES[qtype]
    return int(np.prod(shape[:-1], dtype=np.int64)) * (shape[-1] // block) * type_size


def convert(data: np.ndarray, qtype) -> np.ndarray:
    """float32 -> the bytes (or float array) GGUFWriter writes for ``qtype``."""
    from gguf import quants

    return quants.quantize(np.ascontiguousarray(data, dtype=np.float32), qtype)

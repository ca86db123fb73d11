"""``--engine zhllama|vllm|llamacpp``: which engine generates for chat, generate, serve and webui.

Kept apart from ``vllm_engine.py`` and ``llamacpp_engine.py`` so that ``--help`` and recipes never
import vLLM or llama.cpp.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..config import option
from ..export.config import OutType


@dataclass(kw_only=True)
class BackendConfig:
    kind: Literal["zhllama", "vllm", "llamacpp"] = option(
        "generation engine: zhllama (its own; the only one with --lora, --rope-scaling, --draft-model, CFG and "
        "embeddings), vllm (vLLM's paged-attention engine for many concurrent users; needs pip install "
        "'zhllama[vllm]') or llamacpp (llama.cpp on a GGUF file or a model folder exported on first use, for CPUs and "
        "edge machines; needs pip install 'zhllama[llamacpp]'); see docs/serve.md", "zhllama", flags=("--engine",))
    tensor_parallel_size: int = option("--engine vllm: shard the model over this many GPUs", 1, low=1)
    enforce_eager: bool = option("--engine vllm: skip graph capture/compilation (starts faster, decodes slower)",
                                 False)
    gpu_memory_utilization: float = option("--engine vllm: share of each GPU's memory vLLM may take (weights + "
                                           "KV cache)", 0.9, positive=True, high=1)
    outtype: OutType | None = option("--engine llamacpp with a model folder: the GGUF weight type it is exported to "
                                     "on first use and cached in the folder's .zhllama-gguf/ (default f16; q8_0 is "
                                     "the fast one)", None)
    extra_buffers: bool = option("--engine llamacpp: let llama.cpp repack quantized weights into its extra CPU "
                                 "buffers (faster q4_0 on some CPUs; crashed on an AMX machine, so off by default)",
                                 False)

    def load(self, engine, threads: int | None = None, parallel: int = 1):
        """The engine for ``engine`` (an :class:`~zhllama.infer.config.EngineConfig`) on this backend.

        ``threads``: CPU threads (torch's, or llama.cpp's); ``parallel``: the most requests decoded
        together (llama.cpp sizes its sequences by it).
        """
        if self.kind == "vllm":
            from .vllm_engine import VllmEngine

            return VllmEngine.load(engine, self)
        if self.kind == "llamacpp":
            from .llamacpp_engine import LlamaCppEngine

            return LlamaCppEngine.load(engine, self, threads=threads, parallel=parallel)
        if threads is not None:
            import torch

            torch.set_num_threads(threads)
        return engine.load()

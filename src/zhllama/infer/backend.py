"""``--engine zhllama|vllm``: which engine generates for ``zhllama serve`` and ``zhllama generate``.

Kept apart from ``vllm_engine.py`` so that ``--help`` and recipes never import vLLM.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..config import option


@dataclass(kw_only=True)
class BackendConfig:
    kind: Literal["zhllama", "vllm"] = option(
        "generation engine: zhllama (its own; the only one with --lora, --rope-scaling, --draft-model and "
        "embeddings) or vllm (vLLM's paged-attention engine for many concurrent users; needs pip install "
        "'zhllama[vllm]', see docs/serve.md)", "zhllama", flags=("--engine",))
    tensor_parallel_size: int = option("--engine vllm: shard the model over this many GPUs", 1, low=1)
    enforce_eager: bool = option("--engine vllm: skip graph capture/compilation (starts faster, decodes slower)",
                                 False)
    gpu_memory_utilization: float = option("--engine vllm: share of each GPU's memory vLLM may take (weights + "
                                           "KV cache)", 0.9, positive=True, high=1)

    def load(self, engine):
        """The engine for ``engine`` (an :class:`~zhllama.infer.config.EngineConfig`) on this backend."""
        if self.kind == "vllm":
            from .vllm_engine import VllmEngine

            return VllmEngine.load(engine, self)
        return engine.load()

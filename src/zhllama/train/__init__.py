"""Training stages: continued pre-training, instruction tuning, LoRA merging.

Python entry points (heavy libraries are imported when called)::

    from zhllama.train import TrainConfig, train, merge_adapters
    result = train(TrainConfig(model=..., train_files=[...], output_dir=...), "pt")
    merged = merge_adapters(base, [adapter1, adapter2], out, dtype="float16")
"""

from __future__ import annotations

from .config import TrainConfig


def train(cfg: TrainConfig, stage: str, callbacks: list | None = None) -> dict:
    from .run import train as _train

    return _train(cfg, stage, callbacks)


def merge_adapters(base, loras, out, dtype: str = "auto", max_shard_size: str = "2GB", overwrite: bool = False,
                   template: str | None = None):
    from .merge import merge_adapters as _merge

    return _merge(base, loras, out, dtype=dtype, max_shard_size=max_shard_size, overwrite=overwrite, template=template)


__all__ = ["TrainConfig", "train", "merge_adapters"]

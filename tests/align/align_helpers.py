"""Helpers of the alignment tests (a module of its own: ``conftest`` is a name every test folder uses)."""

from __future__ import annotations

import json
from pathlib import Path


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def synthetic_pairs(builtin_text, start: int, n: int) -> list[dict]:
    """Prompt: a request; chosen: a Chinese sentence; rejected: an English one (the learnable preference)."""
    zh = [t[:24] for t in builtin_text["zh"] if len(t) >= 12]
    en = [t[:48] for t in builtin_text["en"] if len(t) >= 20 and t.isascii()]
    return [{"instruction": "请写一句话。", "input": zh[start + i][:6], "chosen": zh[start + i + 1000],
             "rejected": en[start + i]} for i in range(n)]


def align_config(stage, model_dir, files, out, **over):
    """A few-step configuration of the trainer ``stage`` for the hidden-64 test model."""
    from dataclasses import fields

    from zhllama.align import TRAINERS

    base = dict(model=str(model_dir), train_files=[str(f) for f in files], output_dir=str(out), max_length=96,
                batch_size=8, learning_rate=5e-3, lr_scheduler="constant", warmup_ratio=0.0, max_steps=12,
                logging_steps=1, save_steps=1000, lora_rank=8, lora_alpha=16, lora_dropout=0.0, seed=0,
                cache_dir=str(Path(out).parent / "data-cache"), template="alpaca")
    schema = TRAINERS[stage].schema
    base = {k: v for k, v in base.items() if k in {f.name for f in fields(schema)}}  # ppo reads no max_length
    return schema(**{**base, **over})

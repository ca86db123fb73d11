"""zhllama train pt / sft on the tiny model: loss falls, outputs are complete and honest."""

from __future__ import annotations

import json

import pytest

from zhllama.train import train


def losses(out):
    m = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    return [loss for _, loss in m["loss_curve"]["train"]], m


def test_pt_lora_loss_falls_and_writes_outputs(tmp_path, tiny_model_dir, pt_corpus, tiny_config):
    out = tmp_path / "run"
    result = train(tiny_config(tiny_model_dir, [pt_corpus], out), "pt")
    curve, metrics = losses(out)
    assert curve[-1] < 0.8 * curve[0]
    assert (out / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    final = out / "final"
    assert result["model_dir"] == str(final)
    assert (final / "adapter_config.json").is_file() and (final / "tokenizer.model").is_file()
    meta = json.loads((final / "zhllama.json").read_text())
    assert meta["stage"] == "pt" and meta["lora"] is True and "template" not in meta
    assert metrics["metrics"]["tokens_seen"] == 12 * 4 * 64

"""train --qlora on CPU where bitsandbytes is installed (its CPU backend does 4-bit): loss falls, the adapter loads on a full base."""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch

from zhllama.model.load import load_model

needs_bnb = pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is None,
                               reason="bitsandbytes is not installed (make test-engines runs this)")


@needs_bnb
def test_qlora_trains_on_cpu_and_the_adapter_loads_on_a_full_base(tmp_path, tiny_model_dir, pt_corpus, tiny_config):
    import bitsandbytes as bnb

    from zhllama.train import train

    out = tmp_path / "qlora"
    train(tiny_config(tiny_model_dir, [pt_corpus], out, qlora=True, max_steps=8, validation_split=0), "pt")
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    curve = [loss for _, loss in metrics["loss_curve"]["train"]]
    assert metrics["qlora"] is True and curve[-1] < 0.9 * curve[0]
    model, _ = load_model(tiny_model_dir, lora=out / "final", device="cpu")
    assert not any(isinstance(m, bnb.nn.Linear4bit) for m in model.modules())
    with torch.no_grad():
        assert torch.isfinite(model(torch.tensor([[1, 20, 30]])).logits).all()

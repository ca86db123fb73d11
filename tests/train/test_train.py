"""zhllama train pt / sft on the tiny model: loss falls, outputs are complete and honest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from zhllama.templates import get_template
from zhllama.tokenizer.load import load_tokenizer
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
    assert metrics["metrics"]["tokens_seen"] == 12 * 4 * 64  # full blocks: every token is real
    assert metrics["metrics"]["eval_loss"] > 0 and metrics["data"]["validation_blocks"] > 0
    assert metrics["parameters"]["trainable"] < metrics["parameters"]["total"]


@pytest.mark.parametrize("stage,full", [("pt", True), ("sft", False), ("sft", True)])
def test_loss_falls(stage, full, tmp_path, tiny_model_dir, pt_corpus, sft_data, tiny_config):
    from transformers import AutoModelForCausalLM

    data = pt_corpus if stage == "pt" else sft_data
    train(tiny_config(tiny_model_dir, [data], tmp_path / "run", full=full, validation_split=0.0), stage)
    curve, metrics = losses(tmp_path / "run")
    assert curve[-1] < 0.8 * curve[0], curve
    final = tmp_path / "run" / "final"
    meta = json.loads((final / "zhllama.json").read_text())
    assert meta["stage"] == stage and meta["lora"] is (not full)
    assert meta.get("template") == ("alpaca" if stage == "sft" else None)
    # the folder's chat_template is the one it was trained with (zhllama chat's choice for it)
    assert load_tokenizer(final).chat_template == get_template(meta.get("template", "none")).jinja()
    if full:
        model = AutoModelForCausalLM.from_pretrained(str(final))
        base = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
        assert not torch.equal(model.model.layers[0].mlp.up_proj.weight, base.model.layers[0].mlp.up_proj.weight)
        assert (final / "tokenizer.model").is_file()
    if stage == "sft":
        assert metrics["data"]["train_examples"] == 32


def test_resize_when_tokenizer_is_larger(tmp_path, tiny_model_dir, pt_corpus, grown_tokenizers, tiny_config):
    plus, _ = grown_tokenizers
    result = train(tiny_config(tiny_model_dir, [pt_corpus], tmp_path / "run", tokenizer=str(plus), max_steps=2,
                               full=True, pad_vocab_to_multiple_of=64), "pt")
    _, metrics = losses(tmp_path / "run")
    vocab = metrics["vocabulary"]
    assert vocab["resized"] and vocab["embedding_rows_before"] == 1200 and vocab["tokenizer_size"] == 1210
    assert vocab["embedding_rows"] == 1216  # 1,210 padded up to a multiple of 64 (19 x 64)
    from transformers import AutoConfig

    assert AutoConfig.from_pretrained(result["model_dir"]).vocab_size == 1216


def test_lora_on_a_model_from_model_resize_trains_its_new_rows(tmp_path, tiny_model_dir, pt_corpus, grown_tokenizers,
                                                               tiny_config):
    """`model resize` then LoRA `train pt` without --modules-to-save: the new rows must still be trained."""
    from safetensors import safe_open

    from zhllama.model.resize import ResizeConfig, resize_model

    plus, _ = grown_tokenizers
    resized = tmp_path / "resized"
    resize_model(ResizeConfig(model=str(tiny_model_dir), tokenizer=str(plus), out=str(resized)))
    result = train(tiny_config(resized, [pt_corpus], tmp_path / "run", max_steps=2, modules_to_save=[]), "pt")
    adapter = Path(result["output_dir"]) / "final"
    with safe_open(str(next(adapter.glob("adapter_model.safetensors"))), "pt") as f:
        names = list(f.keys())
    assert any("embed_tokens" in n for n in names) and any("lm_head" in n for n in names)

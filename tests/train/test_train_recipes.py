"""The shipped recipes load into TrainConfig and say what the seeds did; vocabulary checks use real files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from zhllama.config import load_yaml
from zhllama.errors import ZhllamaError
from zhllama.pipeline.shipped import recipes_folder
from zhllama.train import TrainConfig
from zhllama.train.precision import SHIPPED_DEEPSPEED, shipped_config

RECIPES = Path(str(recipes_folder())) / "train"
PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "down_proj", "up_proj"]


def recipe(name) -> TrainConfig:
    return load_yaml(RECIPES / name, TrainConfig)


def test_every_recipe_loads():
    names = sorted(p.name for p in RECIPES.glob("*.yaml"))
    assert len(names) == 4
    for name in names:
        stage = "sft" if "sft" in name else "pt"
        recipe(name).check(stage)


def test_recipes_follow_the_seeds():
    pt = recipe("chinese-llama-7b-pt-lora.yaml")
    assert (pt.lora_rank, pt.lora_alpha, pt.block_size, pt.full) == (8, 32.0, 512, False)
    assert pt.lora_target_modules == PROJECTIONS and pt.modules_to_save == ["embed_tokens", "lm_head"]
    assert recipe("chinese-alpaca-7b-sft-lora.yaml").template == "alpaca"
    a2 = recipe("chinese-alpaca-2-7b-sft-lora.yaml")
    assert (a2.template, a2.lora_rank, a2.lora_alpha, a2.deepspeed) == ("llama2-zh", 64, 128.0, "zero2")
    full = recipe("chatllama-7b-full-zero3.yaml")
    assert full.full and full.deepspeed == "zero3"


def test_shipped_deepspeed_configs():
    for name in SHIPPED_DEEPSPEED:
        cfg = json.loads(shipped_config(name).read_text())
        assert cfg["zero_optimization"]["stage"] == int(name[-1])
    z3 = json.loads(shipped_config("zero3").read_text())["zero_optimization"]
    assert z3["stage3_gather_16bit_weights_on_model_save"] is True  # else saved adapters come out empty


def test_chinese_llama2_vocabulary_is_read_from_files(tmp_path, shared_data):
    """A tiny model on the real 55,296-piece tokenizer; the 32,000-piece Llama-2 one is refused."""
    from zhllama.model.init import InitConfig, init_model
    from zhllama.tokenizer.hf import write_hf_tokenizer
    from zhllama.train.prepare import load_for_training

    zh = write_hf_tokenizer(shared_data / "tokenizers/chinese-llama2/tokenizer.model", tmp_path / "zh_tok")
    llama2 = write_hf_tokenizer(shared_data / "tokenizers/llama2/tokenizer.model", tmp_path / "llama2_tok")
    model_dir = init_model(InitConfig(tokenizer=str(zh), out=str(tmp_path / "m"), hidden_size=16, layers=1, heads=2,
                                      intermediate_size=32, max_position=64))
    model, tok, _, report = load_for_training(str(model_dir), None, None)
    assert len(tok) == report["embedding_rows"] == 55296 and not report["resized"]
    with pytest.raises(ZhllamaError, match=r"does not extend the model's tokenizer .*: it has 32,000 tokens, fewer than the 55,296"):
        load_for_training(str(model_dir), str(llama2), None)

"""Every recipe in recipes/ parses, plans (training settings checked against TrainConfig) and says
what it mirrors; the Chinese-LLaMA-2 recipe's tokenizer hand-off is checked on the real files."""

from __future__ import annotations

from pathlib import Path

import pytest

from zhllama.errors import ZhllamaError
from zhllama.pipeline import load_recipe, prepare
from zhllama.pipeline.stages import plan

RECIPES = sorted((Path(__file__).resolve().parent.parent / "recipes").glob("*.yaml"))


def test_the_seed_recipes_are_present():
    assert {p.name for p in RECIPES} >= {"demo.yaml", "chinese-llama2-7b.yaml", "chinese-alpaca2-7b.yaml", "chatllama-7b.yaml"}


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_every_recipe_parses_and_plans(path, tmp_path):
    recipe = load_recipe(path)
    recipe.run_dir = str(tmp_path / "run")
    stages = plan(recipe)
    assert [s.name for s in stages] == recipe.enabled() and stages


def test_chinese_llama2_recipe_is_lora_pretraining_with_trained_embeddings():
    r = load_recipe(next(p for p in RECIPES if p.name == "chinese-llama2-7b.yaml"))
    assert r.enabled() == ["tokenizer", "resize", "pt", "eval"]
    assert r.base_model == "meta-llama/Llama-2-7b-hf"
    assert r.pt.get("full", False) is False and r.pt["lora_rank"] == 64
    assert sorted(r.pt["modules_to_save"]) == ["embed_tokens", "lm_head"]


def test_chinese_alpaca2_recipe_uses_the_llama2_zh_template_and_merges():
    r = load_recipe(next(p for p in RECIPES if p.name == "chinese-alpaca2-7b.yaml"))
    assert r.enabled() == ["sft", "merge", "eval"] and r.template == "llama2-zh"


def test_chatllama_recipe_is_full_parameter_zero3():
    r = load_recipe(next(p for p in RECIPES if p.name == "chatllama-7b.yaml"))
    for section in (r.pt, r.sft):
        assert section["full"] is True and section["deepspeed"] == "zero3"


def test_seed_recipe_without_its_data_fails_the_check_naming_the_file(tmp_path):
    r = load_recipe(next(p for p in RECIPES if p.name == "chatllama-7b.yaml"))
    r.run_dir = str(tmp_path / "run")
    with pytest.raises(ZhllamaError, match=r"pt train_files\[0\]: not found: .*chinese_corpus.txt"):
        prepare(r)


def test_chinese_llama2_tokenizer_handoff_gives_55296_rows(shared_data, tmp_path):
    """The recipe's tokenizer + resize stages on a tiny model that has Llama-2's real tokenizer."""
    from zhllama.model.init import InitConfig, init_model
    from zhllama.pipeline import run_pipeline
    from zhllama.tokenizer.hf import write_hf_tokenizer

    llama_tok = write_hf_tokenizer(shared_data / "tokenizers" / "llama2" / "tokenizer.model", tmp_path / "llama2")
    base = init_model(InitConfig(tokenizer=str(llama_tok), out=str(tmp_path / "base"), hidden_size=16, layers=1, heads=2,
                                 intermediate_size=32, max_position=64))
    r = load_recipe(next(p for p in RECIPES if p.name == "chinese-llama2-7b.yaml"))
    r.base_model, r.run_dir, r.stages = str(base), str(tmp_path / "run"), ["tokenizer", "resize"]
    r.tokenizer.path = str(shared_data / "tokenizers" / "chinese-llama2")
    r.eval.text = ["builtin:people_daily?split=valid&max_chars=5000"]
    result = run_pipeline(r, echo=lambda s: None)
    tok = result.metrics("tokenizer")
    assert tok["vocab_before"] == 32000 and tok["vocab_after"] == 55296
    assert tok["chars_per_token_after"] > 2 * tok["chars_per_token_before"]
    assert result.metrics("resize")["new_rows"] == 55296 and result.metrics("resize")["old_rows"] == 32000

"""Every shipped recipe (zhllama/recipes/) is listed, parses, plans (training settings checked against
TrainConfig) and says what it mirrors; it runs by name, with paths relative to the current folder;
the Chinese-LLaMA-2 recipe's tokenizer hand-off is checked on the real files."""

from __future__ import annotations

from pathlib import Path

import pytest

from zhllama.errors import ZhllamaError
from zhllama.pipeline import load_recipe, prepare
from zhllama.pipeline.shipped import recipe_listing, recipes_folder, training_config_listing
from zhllama.pipeline import plan

REPO = Path(__file__).resolve().parent.parent
RECIPES = sorted(Path(str(recipes_folder())).glob("*.yaml"))


def test_the_seed_recipes_are_present():
    assert {p.name for p in RECIPES} >= {"demo.yaml", "chinese-llama2-7b.yaml", "chinese-alpaca2-7b.yaml", "chatllama-7b.yaml"}


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_every_recipe_parses_and_plans(path, tmp_path):
    recipe = load_recipe(path)
    recipe.run_dir = str(tmp_path / "run")
    stages = plan(recipe)
    assert [s.name for s in stages] == recipe.enabled() and stages


def test_list_recipes_shows_every_shipped_recipe_with_its_description(capsys):
    from zhllama.cli import main

    assert main(["pipeline", "--list-recipes"]) == 0
    out = capsys.readouterr().out
    shipped = RECIPES + sorted(Path(str(recipes_folder())).glob("train/*.yaml"))
    assert len(shipped) == 9
    for path in shipped:
        first = path.read_text(encoding="utf-8").splitlines()[0].lstrip("# ")
        assert first and f"{path.stem}  " in out and first in out
    assert [n for n, _ in recipe_listing()] == [p.stem for p in RECIPES]
    assert all(d for _, d in recipe_listing() + training_config_listing())


@pytest.mark.parametrize("name", [p.stem for p in RECIPES])
def test_every_listed_recipe_loads_by_name_like_its_file(name):
    by_name, by_file = load_recipe(name), load_recipe(recipes_folder() / f"{name}.yaml")
    assert by_name == by_file and by_name.root == Path.cwd().resolve()


def test_the_clone_recipes_folder_is_the_shipped_one():
    assert (REPO / "recipes").resolve() == Path(str(recipes_folder())).resolve()
    assert load_recipe(REPO / "recipes" / "demo.yaml") == load_recipe("demo")


def test_shipped_recipe_runs_by_name_with_paths_relative_to_the_current_folder(tmp_path, monkeypatch, capsys):
    from zhllama.cli import main

    for rel in ("data/pt/chinese_corpus.txt", "data/sft/instructions_zh.json", "data/eval/chinese_valid.txt"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("你好\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert main(["pipeline", "chatllama-7b", "--check"]) == 0
    out = capsys.readouterr().out
    assert f"{tmp_path / 'runs' / 'chatllama-7b'}" in out
    assert f"train_files[0]={tmp_path / 'data/pt/chinese_corpus.txt'}" in out


def test_a_file_of_that_name_wins_over_a_shipped_recipe_but_not_for_the_demo(tmp_path, monkeypatch):
    from zhllama.pipeline import load_shipped_recipe
    from zhllama.pipeline.demo import demo_recipe

    monkeypatch.chdir(tmp_path)
    (tmp_path / "demo").write_text("name: mine\nbase_model: x/y\nexport: {}\n", encoding="utf-8")
    assert load_recipe("demo").name == "mine"
    assert load_shipped_recipe("demo").name == demo_recipe().name == "demo"


def test_an_unknown_recipe_name_suggests_the_nearest_shipped_one(capsys):
    from zhllama.cli import main

    assert main(["pipeline", "chinese-lama2-7b", "--check"]) == 2
    assert "did you mean 'chinese-llama2-7b'?" in capsys.readouterr().err


def test_pipeline_without_a_recipe_says_how_to_list_them(capsys):
    from zhllama.cli import main

    assert main(["pipeline"]) == 2
    assert "zhllama pipeline --list-recipes" in capsys.readouterr().err


def test_chinese_llama2_recipe_is_lora_pretraining_with_trained_embeddings():
    r = load_recipe(next(p for p in RECIPES if p.name == "chinese-llama2-7b.yaml"))
    assert r.enabled() == ["tokenizer", "resize", "prepare", "pt", "eval"]
    assert r.prepare.train_files == ["data/pt/chinese_corpus.txt"] and not r.pt.train_files  # pt reads the shards
    assert r.base_model == "meta-llama/Llama-2-7b-hf"
    assert r.pt.full is False and r.pt.lora_rank == 64
    assert sorted(r.pt.modules_to_save) == ["embed_tokens", "lm_head"]


def test_chinese_alpaca2_recipe_uses_the_llama2_zh_template_and_merges():
    r = load_recipe(next(p for p in RECIPES if p.name == "chinese-alpaca2-7b.yaml"))
    assert r.enabled() == ["sft", "merge", "eval"] and r.template == "llama2-zh"


def test_chatllama_recipe_is_full_parameter_zero3():
    r = load_recipe(next(p for p in RECIPES if p.name == "chatllama-7b.yaml"))
    for section in (r.pt, r.sft):
        assert section.full is True and section.deepspeed == "zero3"


def test_seed_recipe_without_its_data_fails_the_check_naming_the_file(tmp_path):
    r = load_recipe(next(p for p in RECIPES if p.name == "chatllama-7b.yaml"))
    r.run_dir = str(tmp_path / "run")
    with pytest.raises(ZhllamaError, match=r"pt train_files\[0\]: not found: .*chinese_corpus.txt"):
        prepare(r)


def test_llama3_zh_recipe_is_llama3_shaped_and_needs_the_llama3_tokenizer(tmp_path):
    """Without ../shared the recipe stops at the check, naming the tokenizer it needs; nothing is run."""
    r = load_recipe("llama3-zh")
    assert r.template == "llama3" and r.base.family == "llama" and r.base.kv_heads < r.base.heads
    assert r.base.rope_theta == 500000.0 and r.ablation is not None
    r.run_dir, r.base.tokenizer = str(tmp_path / "run"), str(tmp_path / "no-llama3")
    with pytest.raises(ZhllamaError, match=r"base tokenizer: not found: .*no-llama3"):
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

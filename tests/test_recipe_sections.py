"""Recipe sections are the stages' own schemas: a bad key or value is refused when the recipe is read."""

from __future__ import annotations

import pytest

from zhllama.errors import ZhllamaError
from zhllama.pipeline import parse_recipe


def test_tokenizer_options_are_checked_against_tokenizer_train():
    r = parse_recipe({"base_model": "x/y", "tokenizer": {"corpus": ["a.txt"], "options": {"character_coverage": 0.98}}})
    assert r.tokenizer.options.character_coverage == 0.98 and r.tokenizer.options.shuffle is True
    with pytest.raises(ZhllamaError, match=r"tokenizer.options: unknown key 'charater_coverage'.*'character_coverage'"):
        parse_recipe({"base_model": "x/y", "tokenizer": {"corpus": ["a.txt"], "options": {"charater_coverage": 0.98}}})
    with pytest.raises(ZhllamaError, match=r"unknown key 'out'"):  # the pipeline sets it
        parse_recipe({"base_model": "x/y", "tokenizer": {"corpus": ["a.txt"], "options": {"out": "somewhere"}}})


@pytest.mark.parametrize("section,value,where", [
    ("tokenizer", {"path": "tok", "mode": "append"}, "tokenizer.mode: 'append' is not one of"),
    ("tokenizer", {"path": "tok", "model_type": "wordpiece"}, "tokenizer.model_type: 'wordpiece' is not one of"),
    ("resize", {"init": "zeros"}, "resize.init: 'zeros' is not one of"),
    ("resize", {"pad_to_multiple_of": 0}, "resize.pad_to_multiple_of 0 is out of range: it must be at least 1"),
    ("export", {"outtype": "q3_k"}, "export.outtype: 'q3_k' is not one of"),
    ("merge", {"max_shard_sise": "1GB"}, "did you mean 'max_shard_size'"),
])
def test_stage_settings_are_validated_on_reading(section, value, where):
    data = {"base_model": "x/y", "tokenizer": {"path": "tok"}, section: value}
    with pytest.raises(ZhllamaError, match=where):
        parse_recipe(data)


def test_base_section_is_model_init_shape():
    from dataclasses import fields

    from zhllama.model.init import ModelShape

    r = parse_recipe({"base": {"corpus": ["a.txt"], "hidden_size": 64, "rope_theta": 500000.0}})
    assert r.base.hidden_size == 64 and r.base.rope_theta == 500000.0
    assert {f.name for f in fields(ModelShape)} <= {f.name for f in fields(r.base)}


def test_training_sections_are_typed_and_name_the_recipe_file(tmp_path):
    from zhllama.pipeline import load_recipe

    r = parse_recipe({"base_model": "x/y", "sft": {"train_files": ["a.json"], "full": True, "group_by_length": True,
                                                   "then": {"train_files": ["b.json"], "group_by_length": False}},
                      "dpo": {"train_files": ["p.json"], "beta": 0.5}})
    assert r.sft.lora_rank == 8 and r.sft.then.group_by_length is False and r.dpo.beta == 0.5
    path = tmp_path / "mine.yaml"
    path.write_text("base_model: x/y\nsft:\n  train_files: [a.json]\n  learning_rat: 0.1\n", encoding="utf-8")
    with pytest.raises(ZhllamaError, match=r"mine\.yaml\.sft: unknown key 'learning_rat'.*did you mean 'learning_rate'"):
        load_recipe(path)


@pytest.mark.parametrize("section,key", [("pt", "output_dir"), ("sft", "model"), ("dpo", "resume"), ("ppo", "reward_model")])
def test_a_key_the_pipeline_sets_is_refused_when_the_recipe_is_read(section, key):
    data = {"base_model": "x/y", "rm": {"train_files": ["p.json"]}, section: {"train_files": ["a.json"], key: "x"}}
    with pytest.raises(ZhllamaError, match=rf"recipe.{section}: '{key}' is set by the pipeline"):
        parse_recipe(data)


def test_base_train_is_training_settings_without_its_data_or_full():
    r = parse_recipe({"base": {"corpus": ["a.txt"], "train": {"max_steps": 7}}})
    assert r.base.train.max_steps == 7
    for key in ("train_files", "full"):
        with pytest.raises(ZhllamaError, match=rf"base.train: '{key}' is set by the pipeline"):
            parse_recipe({"base": {"corpus": ["a.txt"], "train": {key: True}}})


def test_sft_then_keys_override_the_first_phase_even_with_the_default_value(tmp_path):
    from zhllama.pipeline import plan

    r = parse_recipe({"base_model": "x/y", "run_dir": str(tmp_path / "run"),
                      "sft": {"train_files": ["a.json"], "full": True, "group_by_length": True, "learning_rate": 1e-3,
                              "then": {"train_files": ["b.json"], "group_by_length": False, "max_steps": 5}}},
                     root=tmp_path)
    (sft,) = plan(r)
    first, then = sft.settings.train, sft.settings.then
    assert first.group_by_length is True and then.group_by_length is False  # False is TrainConfig's default
    assert then.learning_rate == 1e-3 and then.max_steps == 5 and then.full  # inherited, given, inherited
    assert sft.inputs["then_train_files"] == [str(tmp_path / "b.json")]

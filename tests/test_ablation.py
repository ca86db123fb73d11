"""The ablation stage's plan: the base model and tokenizer, the pt stage's text and settings,
scaled to the same number of characters."""

from __future__ import annotations

from dataclasses import replace

import pytest

from zhllama.errors import ZhllamaError
from zhllama.pipeline import parse_recipe
from zhllama.pipeline.ablation import matched_settings
from zhllama.pipeline import plan
from zhllama.pipeline.training import TrainPlan
from zhllama.train.config import TrainConfig

PT = {"train_files": ["zh.txt"], "max_steps": 100, "batch_size": 4, "learning_rate": 0.002, "logging_steps": 10,
      "save_steps": 50, "eval_steps": 50}


def test_ablation_reads_the_base_model_and_the_pt_stage_text_and_settings(tmp_path):
    r = parse_recipe({"base_model": "base", "run_dir": str(tmp_path / "run"), "tokenizer": {"path": "tok"}, "resize": {},
                      "pt": PT, "ablation": {"logging_steps": 5}, "eval": {"text": ["valid.txt"]}}, root=tmp_path)
    stages = {s.name: s for s in plan(r)}
    ab, pt = stages["ablation"], stages["pt"]
    assert ab.inputs == {"model": str(tmp_path / "base"), "extended_tokenizer": str(tmp_path / "run" / "resize" / "out"),
                         "train_files": [str(tmp_path / "zh.txt")]}
    assert ab.settings == TrainPlan(replace(pt.settings.train, logging_steps=5))
    assert pt.settings.train.learning_rate == 0.002 and pt.settings.train.train_files == []  # files are inputs
    assert stages["eval"].inputs["models"]["pre-trained"] == str(tmp_path / "run" / "pt" / "out" / "model")
    assert stages["eval"].settings.arms == {"pt": str(tmp_path / "run" / "pt" / "out" / "model"),
                                            "ablation": str(tmp_path / "run" / "ablation" / "out" / "model")}


def test_an_ablation_key_overrides_pt_even_when_it_gives_the_default(tmp_path):
    r = parse_recipe({"base_model": "base", "run_dir": str(tmp_path / "run"), "tokenizer": {"path": "tok"}, "pt": PT,
                      "ablation": {"learning_rate": 2e-4}}, root=tmp_path)
    ab = {s.name: s for s in plan(r)}["ablation"]
    assert TrainConfig().learning_rate == 2e-4 and ab.settings.train.learning_rate == 2e-4  # not pt's 0.002


def test_ablation_without_a_vocabulary_extension_is_refused(tmp_path):
    r = parse_recipe({"base_model": "base", "run_dir": str(tmp_path / "run"), "pt": PT, "ablation": {}}, root=tmp_path)
    with pytest.raises(ZhllamaError, match="already trains with the base tokenizer"):
        plan(r)


def test_ablation_steps_are_set_by_the_pipeline(tmp_path):
    with pytest.raises(ZhllamaError, match="ablation: 'max_steps' is set by the pipeline"):  # when the recipe is read
        parse_recipe({"base_model": "base", "run_dir": str(tmp_path / "run"), "tokenizer": {"path": "tok"}, "pt": PT,
                      "ablation": {"max_steps": 10}}, root=tmp_path)


def test_ablation_needs_a_pt_stage(tmp_path):
    with pytest.raises(ZhllamaError, match="stage 'ablation' has nothing to work on"):
        parse_recipe({"base_model": "base", "run_dir": str(tmp_path / "run"), "ablation": {}}, root=tmp_path)


def test_matched_settings_scale_every_step_count_by_the_token_ratio():
    pt = TrainConfig(max_steps=100, logging_steps=10, save_steps=50, eval_steps=None, learning_rate=0.002)
    out = matched_settings(pt, 3.16)
    assert out == replace(pt, max_steps=316, logging_steps=32, save_steps=158)
    assert out.eval_steps is None and out.learning_rate == 0.002


def test_generation_speed_counts_chinese_characters_only():
    from zhllama.pipeline.showcase import chinese_chars

    assert chinese_chars("中国 economy 经济，") == 5  # 中国经济 and the full-width comma

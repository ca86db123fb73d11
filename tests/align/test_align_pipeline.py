"""The pipeline's rm / dpo / ppo / orpo stages: plan-time hand-offs, and dpo and orpo stages run end to end."""

from __future__ import annotations

import json

import pytest

from zhllama.errors import ZhllamaError
from zhllama.pipeline import parse_recipe, prepare, run_pipeline

PAIRS = "builtin:task_pairs?split=train&per_task=8&dev=2&test=2&tasks=sentiment"


def recipe(tmp_path, base, **sections):
    return parse_recipe({"run_dir": str(tmp_path / "run"), "base_model": str(base), "template": "alpaca", **sections},
                        root=tmp_path)


def test_stages_hand_on_the_sft_model_the_reward_model_and_the_tuned_model(tmp_path, tiny_model_dir):
    sft = {"train_files": ["builtin:tasks?per_task=4&dev=2&test=2"], "full": True}
    stages = prepare(recipe(tmp_path, tiny_model_dir, sft=sft, rm={"train_files": [PAIRS]},
                            dpo={"train_files": [PAIRS], "beta": 0.2}, ppo={"train_files": [PAIRS]},
                            eval={"text": ["builtin:people_daily?split=valid&max_chars=100"]}))
    by = {s.name: s for s in stages}
    run = tmp_path / "run"
    assert by["rm"].inputs["model"] == by["dpo"].inputs["model"] == str(run / "sft" / "out" / "model")
    assert by["ppo"].inputs["model"] == str(run / "dpo" / "out" / "model")
    assert by["ppo"].inputs["reward_model"] == str(run / "rm" / "out" / "model")
    assert by["dpo"].settings.beta == 0.2 and by["dpo"].settings.template == "alpaca"
    assert by["dpo"].settings.model is None and by["dpo"].settings.train_files == []  # paths are inputs
    assert by["eval"].settings.final == str(run / "ppo" / "out" / "model")
    (pairs,) = by["rm"].inputs["train_files"]
    assert pairs.endswith(".json")


@pytest.mark.parametrize("sections,message", [
    ({"sft": {"train_files": ["builtin:tasks?per_task=4&dev=2&test=2"]}, "dpo": {"train_files": [PAIRS]}},
     r"dpo: the sft stage's LoRA adapter is not merged"),
    ({"dpo": {"train_files": [PAIRS], "template": "chatml"}}, r"dpo.template is 'chatml' but the recipe's template is 'alpaca'"),
    ({"rm": {"train_files": [PAIRS], "tokenizer": "x"}}, r"rm: 'tokenizer' is set by the pipeline"),
    ({"rm": {"train_files": [PAIRS]}, "ppo": {"train_files": [PAIRS], "reward_model": "x"}},
     r"ppo: 'reward_model' is set by the pipeline"),
    ({"dpo": {"train_files": [PAIRS], "beat": 0.1}}, r"dpo: unknown key 'beat'.*did you mean 'beta'"),
    ({"orpo": {"train_files": [PAIRS], "loss_type": "ipo"}}, r"orpo: unknown key 'loss_type'"),  # a dpo option
    ({"dpo": {"train_files": [PAIRS], "block_size": 64}}, r"dpo: unknown key 'block_size'"),  # a pt option
])
def test_bad_preference_sections_are_refused_before_any_work(sections, message, tmp_path, tiny_model_dir):
    with pytest.raises(ZhllamaError, match=message):
        prepare(recipe(tmp_path, tiny_model_dir, **sections))


def test_ppo_without_a_reward_model_stage_is_refused(tmp_path, tiny_model_dir):
    with pytest.raises(ZhllamaError, match=r"stage 'ppo' has nothing to work on.*'rm' stage"):
        recipe(tmp_path, tiny_model_dir, ppo={"train_files": [PAIRS]})


def test_a_model_tuned_with_another_template_is_refused(tmp_path, tiny_model_dir):
    import shutil

    from zhllama.meta import write_meta

    sft_model = tmp_path / "sft-model"
    shutil.copytree(tiny_model_dir, sft_model)
    write_meta(sft_model, stage="merged", template="chatml")
    with pytest.raises(ZhllamaError, match=r"dpo: .* instruction-tuned with the 'chatml' template .* 'alpaca'"):
        prepare(recipe(tmp_path, sft_model, dpo={"train_files": [PAIRS]}))


def test_dpo_stage_writes_adapter_and_merged_model(tmp_path, tiny_model_dir):
    dpo = {"train_files": [PAIRS], "max_steps": 2, "batch_size": 4, "max_length": 400, "logging_steps": 1,
           "cache_dir": str(tmp_path / "cache")}
    run_pipeline(recipe(tmp_path, tiny_model_dir, dpo=dpo), echo=lambda s: None)
    out = tmp_path / "run" / "dpo" / "out"
    assert (out / "adapter" / "adapter_config.json").is_file() and (out / "model" / "config.json").is_file()
    meta = json.loads((out / "model" / "zhllama.json").read_text())
    assert meta["template"] == "alpaca" and meta["stage"] == "merged"
    manifest = json.loads((tmp_path / "run" / "dpo" / "manifest.json").read_text())
    assert manifest["metrics"]["train_loss"] > 0


def test_orpo_stage_reads_the_dpo_model_and_hands_on_its_own(tmp_path, tiny_model_dir):
    sft = {"train_files": ["builtin:tasks?per_task=4&dev=2&test=2"], "full": True}
    stages = prepare(recipe(tmp_path, tiny_model_dir, sft=sft, dpo={"train_files": [PAIRS]},
                            orpo={"train_files": [PAIRS], "beta": 0.25},
                            eval={"text": ["builtin:people_daily?split=valid&max_chars=100"]}))
    by, run = {s.name: s for s in stages}, tmp_path / "run"
    assert [s.name for s in stages] == ["sft", "dpo", "orpo", "eval"]
    assert by["orpo"].inputs["model"] == str(run / "dpo" / "out" / "model")
    assert by["orpo"].settings.beta == 0.25 and not hasattr(by["orpo"].settings, "loss_type")  # ORPO's own schema
    assert by["eval"].settings.final == str(run / "orpo" / "out" / "model")


def test_orpo_stage_writes_adapter_and_merged_model(tmp_path, tiny_model_dir):
    orpo = {"train_files": [PAIRS], "max_steps": 2, "batch_size": 4, "max_length": 400, "logging_steps": 1,
            "validation_split": 0.25, "cache_dir": str(tmp_path / "cache")}
    run_pipeline(recipe(tmp_path, tiny_model_dir, orpo=orpo), echo=lambda s: None)
    out = tmp_path / "run" / "orpo" / "out"
    assert (out / "adapter" / "adapter_config.json").is_file() and (out / "model" / "config.json").is_file()
    assert json.loads((out / "model" / "zhllama.json").read_text())["template"] == "alpaca"
    metrics = json.loads((tmp_path / "run" / "orpo" / "manifest.json").read_text())["metrics"]
    assert metrics["train_loss"] > 0 and "eval_log_odds_chosen" in metrics

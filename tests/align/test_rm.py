"""zhllama train rm and eval reward on the tiny model: the score order flips toward `chosen`."""

from __future__ import annotations

import json

import pytest
from align_helpers import align_config

from zhllama.align import train_align
from zhllama.align.reward import evaluate_reward


@pytest.fixture(scope="module")
def reward_model(tmp_path_factory, tiny_model_dir, preference_files):
    out = tmp_path_factory.mktemp("rm") / "run"
    return train_align(align_config("rm", tiny_model_dir, [preference_files["train"]], out, max_steps=24, learning_rate=2e-3),
                       "rm")


def test_rm_learns_the_preference_on_held_out_pairs(reward_model, tiny_model_dir, preference_files):
    before = evaluate_reward(str(tiny_model_dir), [str(preference_files["heldout"])], template="alpaca", seed=0)
    after = evaluate_reward(reward_model["model_dir"], [str(preference_files["heldout"])])
    assert after["accuracy"] >= 0.9 > before["accuracy"]
    assert after["mean_margin"] > 0 and after["pairs"] == 40


def test_rm_folder_is_a_sequence_classifier_with_pad_id_and_template(reward_model):
    from transformers import AutoConfig

    final = reward_model["model_dir"]
    config = AutoConfig.from_pretrained(final)
    assert config.architectures == ["LlamaForSequenceClassification"] and config.num_labels == 1
    assert config.pad_token_id is not None
    meta = json.loads(open(f"{final}/zhllama.json").read())
    assert meta["stage"] == "rm" and meta["template"] == "alpaca" and meta["lora"] is False

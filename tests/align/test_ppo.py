"""zhllama train ppo (TRL's RLOO trainer with the reward model) and the preference CLI's errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from align_helpers import align_config, write_jsonl

from zhllama.align import train_align
from zhllama.errors import ZhllamaError
from zhllama.templates import TEMPLATES, encode_messages


@pytest.mark.parametrize("template", sorted(n for n, t in TEMPLATES.items() if not t.special_tokens))  # fit the tiny vocabulary
def test_ppo_prompts_are_the_ids_sft_and_inference_use(template, tiny_tokenizer_dir):
    """RLOO tokenizes prompts with the tokenizer's chat template: it must give encode_messages' ids."""
    from zhllama.tokenizer.load import load_tokenizer
    from zhllama.tokenizer.chat import set_chat_template

    tok = set_chat_template(load_tokenizer(tiny_tokenizer_dir), template)
    messages = [{"role": "user", "content": "判断下面这条评论的情感。\n这本书写得很好"}]
    ids = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
    assert ids == encode_messages(tok, template, messages, add_generation_prompt=True)[0]


def test_ppo_runs_with_a_reward_model_and_writes_an_adapter(tmp_path, tiny_model_dir, preference_files):
    cfg = align_config("ppo", tiny_model_dir, [preference_files["heldout"]], tmp_path / "run", reward_model=str(tiny_model_dir),
                       max_steps=2, batch_size=4, num_generations=2, max_new_tokens=8)
    result = train_align(cfg, "ppo")
    meta = json.loads(open(f"{result['model_dir']}/zhllama.json").read())
    assert meta["stage"] == "ppo" and meta["template"] == "alpaca" and meta["lora"] is True
    history = json.loads((tmp_path / "run" / "metrics.json").read_text())["log_history"]
    assert any("reward" in h for h in history)


@pytest.mark.parametrize("over,message", [
    ({}, r"'reward_model' is not set"),
    ({"reward_model": "RM", "batch_size": 3, "num_generations": 2}, r"not a multiple of num_generations"),
])
def test_ppo_settings_are_checked_before_loading(over, message, tmp_path, preference_files):
    cfg = align_config("ppo", "model", [preference_files["heldout"]], tmp_path / "run", **over)
    with pytest.raises(ZhllamaError, match=message):
        train_align(cfg, "ppo")


def test_template_other_than_the_sft_models_is_refused(tmp_path, tiny_model_dir, preference_files):
    import shutil

    from zhllama.meta import write_meta

    sft = tmp_path / "sft"
    shutil.copytree(tiny_model_dir, sft)
    write_meta(sft, stage="merged", template="chatml")
    with pytest.raises(ZhllamaError, match=r"trained with the 'chatml' template .*pass --template chatml"):
        train_align(align_config("dpo", sft, [preference_files["heldout"]], tmp_path / "run"), "dpo")


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "zhllama", *args], capture_output=True, text=True, cwd=cwd)


def test_cli_reports_a_bad_record_by_file_and_line(tmp_path, tiny_model_dir):
    bad = write_jsonl(tmp_path / "pairs.jsonl", [{"prompt": "问", "chosen": "好", "rejected": "差"},
                                                  {"prompt": "问", "chosen": "一样", "rejected": "一样"}])
    r = cli("train", "dpo", "--model", str(tiny_model_dir), "--train-files", str(bad), "--output-dir",
            str(tmp_path / "run"), "--cache-dir", str(tmp_path / "cache"))
    assert r.returncode == 2
    assert "pairs.jsonl: line 2: 'chosen' and 'rejected' are the same text" in r.stderr.splitlines()[-1]
    r = cli("eval", "reward", "--model", str(tiny_model_dir), "--data", str(bad))
    assert r.returncode == 2 and "records no chat template" in r.stderr


def test_commands_are_generated_from_their_schemas():
    import argparse

    from zhllama.align import TRAINERS
    from zhllama.align.config import RewardEvalConfig
    from zhllama.cli import build_parser
    from zhllama.config.cli_args import _options

    def sub(parser, name):
        return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[name]

    trainers = [(("train", name), t.schema, {"config"}) for name, t in TRAINERS.items()]
    for path, schema, extra in [(("eval", "reward"), RewardEvalConfig, set()), *trainers]:
        parser = build_parser()
        for name in path:
            parser = sub(parser, name)
        assert {a.dest for a in parser._actions} - {"help"} == {o.dest for o in _options(schema)} | extra, path

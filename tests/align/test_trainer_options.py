"""Each preference trainer's command lists exactly the options it reads (issue 27: `train dpo --help` once
offered --block-size, --text-field and --resize-init, which DPO never read)."""

from __future__ import annotations

import argparse
import dataclasses
import sys

import pytest
from align_helpers import align_config

from zhllama.align import TRAINERS, train_align


def command_options(name: str) -> set[str]:
    """The options ``zhllama train NAME --help`` lists, as field names."""
    from zhllama.cli import build_parser

    parser = build_parser()
    for step in ("train", name):
        parser = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[step]
    return {a.dest for a in parser._actions} - {"help", "config"}


def test_the_pt_and_sft_options_are_not_offered_by_the_preference_trainers():
    for name in TRAINERS:
        listed = command_options(name)
        assert {"model", "train_files", "output_dir", "template", "learning_rate", "lora_rank", "full", "resume"} <= listed
        assert not listed & {"block_size", "text_field", "resize_init", "num_proc", "rope_scaling", "qlora", "attn",
                             "group_by_length", "pad_vocab_to_multiple_of"}, name
    assert {"beta", "loss_type"} <= command_options("dpo") and "loss_type" not in command_options("orpo")
    assert {"reward_model", "num_generations"} <= command_options("ppo")
    assert not command_options("ppo") & {"max_length", "validation_split", "cache_dir", "eval_steps"}
    assert not command_options("rm") & {"beta", "reward_model"}


def reads_of(cfg) -> tuple[object, set[str]]:
    """``cfg`` as an instance that records which of its fields the code reads (not counting the reads of
    ``dataclasses.replace`` and of the range check, which visit every field)."""
    names = {f.name for f in dataclasses.fields(cfg)}
    read: set[str] = set()

    class Recording(type(cfg)):
        def __getattribute__(self, name):
            if name in names:
                caller = sys._getframe(1)
                if caller.f_globals.get("__name__") != "dataclasses" and caller.f_code.co_name != "check_ranges":
                    read.add(name)
            return object.__getattribute__(self, name)

    return Recording(**{n: getattr(cfg, n) for n in names}), read


@pytest.mark.parametrize("name", list(TRAINERS))
def test_every_option_a_trainer_lists_is_read_by_a_run(name, tmp_path, tiny_model_dir, preference_files):
    over = {"reward_model": str(tiny_model_dir), "num_generations": 2, "max_new_tokens": 4} if name == "ppo" else \
        {"validation_split": 0.1}
    cfg = align_config(name, tiny_model_dir, [preference_files["heldout"]], tmp_path / "run", max_steps=1, batch_size=2,
                       **over)
    recording, read = reads_of(cfg)
    train_align(recording, name)
    assert command_options(name) - read == set()
    assert command_options(name) == {f.name for f in dataclasses.fields(TRAINERS[name].schema)}

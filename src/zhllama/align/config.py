"""The preference trainers' schemas: each ``train`` option they read, and no other.

:class:`PreferenceConfig` holds the options every preference trainer reads: ``train sft``'s model,
LoRA-or-full, optimisation, checkpoint and resume options under the same names and defaults,
without those of pt/sft data and model building (``block_size``, ``text_field``, ``resize_init``,
``rope_scaling``, ``qlora``, ...), which the preference trainers do not use.  :class:`PairConfig`
adds the options of trainers that learn from tokenized pairs (``max_length``, the validation
split).  Each trainer's module (:mod:`.rm`, :mod:`.dpo`, :mod:`.ppo`, :mod:`.orpo`) subclasses one
of them with its own options; that class is its ``--help``, its recipe section and its Python
argument.  ``train_files`` are preference files (:mod:`zhllama.data.preference`) and ``template``
must be the one the SFT model was trained with.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..config import option
from ..model.config import device_option
from ..train.config import TrainConfig, check_run_options

# TrainConfig fields of trainers on tokenized pairs (not ppo, which samples its own replies)
PAIR_FIELDS = ("validation_split", "max_length", "cache_dir", "eval_batch_size", "eval_steps")
# TrainConfig fields that only pt/sft read: prepared data, data shaping, resizing, RoPE scaling, QLoRA, attention kernel
PT_SFT_FIELDS = ("data", "text_field", "block_size", "num_proc", "resize_init", "pad_vocab_to_multiple_of", "rope_scaling",
                 "qlora", "attn", "group_by_length")


def train_fields(name: str, keep) -> type:
    """A dataclass with the ``TrainConfig`` fields for which ``keep(field_name)`` holds, declared as there
    (type, default, help), so ``train sft`` and the preference trainers share each option's one definition."""
    import typing

    hints = typing.get_type_hints(TrainConfig)
    fields = [(f.name, hints[f.name], dataclasses.field(default=f.default, default_factory=f.default_factory,
                                                        metadata=_for_preference(f.metadata)))
              for f in dataclasses.fields(TrainConfig) if keep(f.name)]
    return dataclasses.make_dataclass(name, fields, kw_only=True)


def _for_preference(meta) -> dict:
    """The field's help without the "sft: " that marks it as an sft option among pt's (template, max_length)."""
    return {**meta, "help": meta["help"].removeprefix("sft: ")}


_RunOptions = train_fields("RunOptions", lambda n: n not in PAIR_FIELDS + PT_SFT_FIELDS)
_PairOptions = train_fields("PairOptions", lambda n: n in PAIR_FIELDS)


@dataclass(kw_only=True)
class PreferenceConfig(_RunOptions):
    """What every preference trainer reads; a trainer's schema subclasses it (or :class:`PairConfig`)."""

    def check(self) -> "PreferenceConfig":
        """Raise a clear error for a missing or inconsistent field; return self."""
        check_run_options(self, with_template=True)
        return self


@dataclass(kw_only=True)
class PairConfig(_PairOptions, PreferenceConfig):
    """A trainer on tokenized (prompt, chosen, rejected) pairs: ``train rm``, ``dpo``, ``orpo``."""


def beta_option(meaning: str) -> float:
    """``beta``: the one coefficient each preference loss has, under TRL's name."""
    return option(meaning, 0.1, low=0)


@dataclass(kw_only=True)
class RewardEvalConfig:
    """``zhllama eval reward``: its options."""

    model: str = option("reward model folder written by `zhllama train rm`")
    data: list[str] = option("preference files (.json/.jsonl with prompt, chosen, rejected)")
    template: str | None = option("chat template (default: the one in the model's zhllama.json)", None)
    max_length: int = option("longest prompt + reply in tokens (replies are cut as in training)", 1024, low=3)
    batch_size: int = option("sequences scored per forward pass", 16, low=1)
    skip_bad: bool = option("skip malformed records (counted) instead of stopping", False)
    device: str = device_option()
    out: str | None = option("also write the JSON result to this file", None)

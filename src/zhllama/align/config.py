"""``AlignConfig``: ``TrainConfig`` plus the options of the preference stages (rm, dpo, ppo).

Every ``train sft`` option keeps its meaning (model, LoRA or full, optimisation, checkpoints,
resume); ``train_files`` are preference files (:mod:`zhllama.data.preference`) and
``template`` must be the one the SFT model was trained with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..config import option
from ..errors import ZhllamaError
from ..train.config import TrainConfig

ALIGN_STAGES = ("rm", "dpo", "ppo")


@dataclass
class AlignConfig(TrainConfig):
    beta: float = option("dpo: strength of the pull toward the reference model; ppo: KL penalty coefficient", 0.1,
                         low=0)
    loss_type: Literal["sigmoid", "ipo", "hinge"] = option("dpo: sigmoid (the DPO paper), ipo or hinge", "sigmoid")
    reward_model: str | None = option("ppo: reward model folder written by `zhllama train rm`", None)
    num_generations: int = option("ppo: sampled replies per prompt (RLOO's leave-one-out baseline needs >= 2)", 4,
                                  low=2)
    max_new_tokens: int = option("ppo: longest sampled reply in tokens", 64, low=1)
    temperature: float = option("ppo: sampling temperature", 1.0, positive=True)

    def check(self, stage: str) -> "AlignConfig":
        if stage not in ALIGN_STAGES:
            raise ZhllamaError(f"unknown preference stage '{stage}'", f"use one of: {', '.join(ALIGN_STAGES)}")
        super().check("sft")  # the same checks as instruction tuning (template included)
        if self.group_by_length:
            raise ZhllamaError("group_by_length is an sft option", "remove it for rm/dpo/ppo")
        if stage == "ppo" and not self.reward_model:
            raise ZhllamaError("'reward_model' is not set", "train one with `zhllama train rm` and pass --reward-model DIR")
        if stage == "ppo" and self.batch_size * self.gradient_accumulation_steps % self.num_generations:
            raise ZhllamaError(f"batch_size x gradient_accumulation_steps ({self.batch_size * self.gradient_accumulation_steps}) "
                               f"is not a multiple of num_generations ({self.num_generations})",
                               "each batch holds whole groups of replies to one prompt; e.g. --batch-size 4 --num-generations 4")
        return self


@dataclass(kw_only=True)
class RewardEvalConfig:
    """``zhllama eval reward``: its options."""

    model: str = option("reward model folder written by `zhllama train rm`")
    data: list[str] = option("preference files (.json/.jsonl with prompt, chosen, rejected)")
    template: str | None = option("chat template (default: the one in the model's zhllama.json)", None)
    max_length: int = option("longest prompt + reply in tokens (replies are cut as in training)", 1024, low=3)
    batch_size: int = option("sequences scored per forward pass", 16, low=1)
    skip_bad: bool = option("skip malformed records (counted) instead of stopping", False)
    device: str = option("auto, cpu, cuda, cuda:1, mps", "auto")
    out: str | None = option("also write the JSON result to this file", None)

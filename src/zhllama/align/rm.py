"""``zhllama train rm``: a reward model on preference pairs (TRL's ``RewardTrainer``).

``final/`` is a full ``*ForSequenceClassification`` of the model's family (one score per sequence, read
at the last non-pad token; ``pad_token_id`` in its config); a LoRA run is merged into it on saving.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import PairConfig
from .trainer import Trainer, require_trl, validation_set


@dataclass(kw_only=True)
class RmConfig(PairConfig):
    """``zhllama train rm``: the options every pair trainer reads; the reward model has none of its own."""


def rm_arguments(cfg: RmConfig) -> tuple[type, dict]:
    return require_trl().RewardConfig, {"max_length": cfg.max_length, "remove_unused_columns": False,
                                        "center_rewards_coefficient": None}


def rm_columns(dataset):
    """RewardTrainer's columns: the whole sequences (prompt + reply) of both replies."""
    return dataset.map(lambda b: {"chosen_ids": [p + c for p, c in zip(b["prompt_ids"], b["chosen_ids"])],
                                  "rejected_ids": [p + r for p, r in zip(b["prompt_ids"], b["rejected_ids"])]},
                       batched=True, remove_columns=["prompt_ids"], desc="prompt + reply")


def build_rm(cfg: RmConfig, model, tok, args, data, peft, callbacks):
    eval_set = validation_set(data)
    return require_trl().RewardTrainer(model=model, args=args, train_dataset=rm_columns(data["train"]),
                                       eval_dataset=rm_columns(eval_set) if eval_set is not None else None,
                                       processing_class=tok, peft_config=peft, callbacks=callbacks)


def rm_summary(m: dict) -> str:
    if m.get("eval_accuracy") is None:
        return ""
    return f", validation pair accuracy {m['eval_accuracy']:.1%} (mean margin {m['eval_margin']:.3f})"


TRAINER = Trainer(
    "rm", RmConfig, rm_arguments, build_rm,
    help="reward model on preference pairs (prompt, chosen, rejected)",
    description="Train a reward model: the model with a scalar score head (its family's *ForSequenceClassification), trained "
                "with the pairwise loss -log sigmoid(score(chosen) - score(rejected)) on preference pairs rendered "
                "with the SFT chat template. LoRA by default (merged into final/ on saving) or --full.",
    head="score", metrics=("eval_accuracy", "eval_margin"), summary=rm_summary)

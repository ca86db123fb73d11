"""``zhllama train dpo``: Direct Preference Optimization on preference pairs (TRL's ``DPOTrainer``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..config import option
from .config import PairConfig, beta_option
from .trainer import Trainer, require_trl, validation_set


@dataclass(kw_only=True)
class DpoConfig(PairConfig):
    beta: float = beta_option("strength of the pull toward the reference model")
    loss_type: Literal["sigmoid", "ipo", "hinge"] = option("sigmoid (the DPO paper), ipo or hinge", "sigmoid")


def dpo_arguments(cfg: DpoConfig) -> tuple[type, dict]:
    return require_trl().DPOConfig, {"max_length": cfg.max_length, "remove_unused_columns": False, "beta": cfg.beta,
                                     "loss_type": [cfg.loss_type]}


def pretokenized(trainer_cls):
    """``trainer_cls`` taking zhllama's tokenized pairs as they are (DPO would re-render them with TRL's own rules)."""

    class PreTokenized(trainer_cls):
        def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
            return dataset

    PreTokenized.__name__ = f"Zhllama{trainer_cls.__name__}"
    return PreTokenized


def build_dpo(cfg: DpoConfig, model, tok, args, data, peft, callbacks):
    """With LoRA the reference is the model with the adapter disabled (no second copy); a full run
    compares with a frozen copy of the starting model."""
    from ..model.load import load_causal_lm

    ref = None if peft is not None else load_causal_lm(cfg.model, model.dtype)
    return pretokenized(require_trl().DPOTrainer)(model=model, ref_model=ref, args=args, train_dataset=data["train"],
                                                  eval_dataset=validation_set(data), processing_class=tok,
                                                  peft_config=peft, callbacks=callbacks)


def dpo_summary(m: dict) -> str:
    if m.get("eval_rewards/margins") is None:
        return ""
    return f", validation reward margin {m['eval_rewards/margins']:.4f} (accuracy {m['eval_rewards/accuracies']:.1%})"


TRAINER = Trainer(
    "dpo", DpoConfig, dpo_arguments, build_dpo,
    help="Direct Preference Optimization on preference pairs",
    description="Direct Preference Optimization of an instruction-tuned model on preference pairs (TRL DPOTrainer): "
                "--beta and --loss-type sigmoid|ipo|hinge. With LoRA the reference model is the same model with the "
                "adapter disabled (no second copy); final/ is an adapter for `zhllama merge`.",
    metrics=("eval_rewards/margins", "eval_rewards/accuracies"), summary=dpo_summary)

"""``zhllama train orpo``: Odds Ratio Preference Optimization on preference pairs (TRL's ``ORPOTrainer``).

ORPO (Hong et al. 2024) adds to the language-model loss on the chosen reply a term that raises the
odds of the chosen reply over the rejected one: ``loss = NLL(chosen) - beta * log sigmoid(log odds
ratio)``, with no reference model.  It can start from a base or an instruction-tuned model.  TRL
keeps it under ``trl.experimental.orpo``; its metrics include ``log_odds_ratio`` (the mean of
``log sigmoid(log odds(chosen) - log odds(rejected))``) and ``log_odds_chosen`` (the log odds ratio).
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import PairConfig, beta_option
from .trainer import Trainer, require_trl, validation_set


@dataclass(kw_only=True)
class OrpoConfig(PairConfig):
    beta: float = beta_option("weight of the odds-ratio term next to the chosen reply's LM loss (the paper's lambda)")


def orpo_classes() -> tuple[type, type]:
    """TRL's ``(ORPOConfig, ORPOTrainer)``, without the warning TRL gives on importing its experimental trainers."""
    import warnings

    require_trl()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from trl.experimental.orpo import ORPOConfig, ORPOTrainer
    return ORPOConfig, ORPOTrainer


def orpo_arguments(cfg: OrpoConfig) -> tuple[type, dict]:
    return orpo_classes()[0], {"max_length": cfg.max_length, "remove_unused_columns": False, "beta": cfg.beta}


def pad_id(tok) -> int:
    """The id padding takes (masked out everywhere): the tokenizer's pad, else its EOS, as the other trainers do."""
    return tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id


def orpo_columns(dataset):
    """ORPOTrainer's tokenized columns from zhllama's pairs: the prompt, and each whole sequence with its
    labels (-100 over the prompt), as its ``tokenize_row`` would make them from text."""

    def columns(b: dict) -> dict:
        out: dict[str, list] = {"prompt_input_ids": b["prompt_ids"],
                                "prompt_attention_mask": [[1] * len(p) for p in b["prompt_ids"]]}
        for side in ("chosen", "rejected"):
            whole = [p + r for p, r in zip(b["prompt_ids"], b[f"{side}_ids"])]
            out[f"{side}_input_ids"] = whole
            out[f"{side}_attention_mask"] = [[1] * len(s) for s in whole]
            out[f"{side}_labels"] = [[-100] * len(p) + r for p, r in zip(b["prompt_ids"], b[f"{side}_ids"])]
        return out

    return dataset.map(columns, batched=True, remove_columns=dataset.column_names, desc="ORPO columns")


def pretokenized_orpo(trainer_cls):
    """``trainer_cls`` taking the columns of :func:`orpo_columns` as they are (its own ``tokenize_row`` would
    re-encode text with the tokenizer alone, not with the SFT template)."""

    class PreTokenized(trainer_cls):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.use_dpo_data_collator = True  # the collator given is TRL's own, with the pad id set

        def tokenize_row(self, feature, model=None):
            return feature

        def _track_num_input_tokens(self, inputs):
            """The non-padding tokens of both sequences, as the other trainers count them (the Trainer's own
            count looks for an ``input_ids`` column, which ORPO's batches do not have)."""
            tokens = inputs["chosen_attention_mask"].sum() + inputs["rejected_attention_mask"].sum()
            self.state.num_input_tokens_seen += self.accelerator.gather(tokens.to(self.args.device)).sum().item()

    PreTokenized.__name__ = f"Zhllama{trainer_cls.__name__}"
    return PreTokenized


def build_orpo(cfg: OrpoConfig, model, tok, args, data, peft, callbacks):
    """TRL's collator and ``padding_value`` read the tokenizer's pad token, which a LLaMA tokenizer lacks: both
    get :func:`pad_id` instead."""
    from trl.experimental.utils import DPODataCollatorWithPadding

    eval_set = validation_set(data)
    args.padding_value = pad_id(tok)
    return pretokenized_orpo(orpo_classes()[1])(
        model=model, args=args, data_collator=DPODataCollatorWithPadding(pad_token_id=pad_id(tok)),
        train_dataset=orpo_columns(data["train"]),
        eval_dataset=orpo_columns(eval_set) if eval_set is not None else None, processing_class=tok,
        peft_config=peft, callbacks=callbacks)


def orpo_summary(m: dict) -> str:
    if m.get("eval_log_odds_chosen") is None:
        return ""
    return (f", validation log odds ratio {m['eval_log_odds_chosen']:.4f} "
            f"(chosen more likely in {m['eval_rewards/accuracies']:.1%})")


TRAINER = Trainer(
    "orpo", OrpoConfig, orpo_arguments, build_orpo,
    help="Odds Ratio Preference Optimization: SFT and preference in one loss, no reference model",
    description="Odds Ratio Preference Optimization on preference pairs (TRL's ORPOTrainer): the LM loss on the "
                "chosen reply plus --beta times -log sigmoid of the log odds ratio of chosen over rejected, with no "
                "reference model. final/ is a LoRA adapter for `zhllama merge`, or with --full the model.",
    metrics=("eval_log_odds_chosen", "eval_log_odds_ratio", "eval_rewards/accuracies"), summary=orpo_summary)

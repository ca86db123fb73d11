"""``train_align(cfg, stage)``: ``train rm``, ``train dpo`` and ``train ppo`` on TRL's trainers.

The run folder is laid out as for ``train sft`` (checkpoint-N/, metrics.json, loss.png, final/),
and an interrupted run continues with ``resume``.  What ``final/`` holds:

* ``rm``: a full ``LlamaForSequenceClassification`` model (one score per sequence, read at the
  last non-pad token; ``pad_token_id`` in its config).  A LoRA run is merged into it on saving;
* ``dpo`` / ``ppo``: a LoRA adapter on the SFT model (``zhllama merge`` folds it in) or the full model.

The pairs are tokenized by :mod:`zhllama.data.preference` (the SFT template) and handed to TRL
pre-tokenized, so TRL's own chat-template rendering never runs for rm and dpo.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
from pathlib import Path

from ..errors import ZhllamaError
from ..logs import claim_output_folder
from ..train.checkpoints import plan_output_dir
from ..train.data import expand_files
from ..train.precision import load_dtype, resolve_deepspeed, resolve_precision
from .config import AlignConfig

log = logging.getLogger(__name__)


def check_handoff(cfg: AlignConfig, stage: str) -> None:
    """The model (and for ppo the reward model) must have been trained with ``cfg.template``; checked before loading."""
    from ..meta import read_meta
    from ..checks import is_local
    from ..model.load import check_model_dir

    folders = [("model", cfg.model)] + ([("reward_model", cfg.reward_model)] if stage == "ppo" else [])
    for name, folder in folders:
        if not is_local(folder):
            continue
        check_model_dir(folder)
        trained = read_meta(folder).template
        if trained and trained != cfg.template:
            raise ZhllamaError(f"{folder} was trained with the '{trained}' template but {name} is used with '{cfg.template}'",
                               f"pass --template {trained}: preference stages must see the prompts SFT saw")
    if stage == "ppo" and is_local(cfg.reward_model) and read_meta(cfg.reward_model).stage not in (None, "rm"):
        raise ZhllamaError(f"{cfg.reward_model} is not a reward model (it was written by stage "
                           f"'{read_meta(cfg.reward_model).stage}')", "train one with `zhllama train rm`")


def load_policy(cfg: AlignConfig, stage: str, precision: str):
    """``(model, tokenizer, tokenizer_source, vocab_report)``; the rm stage loads a sequence classifier."""
    from ..model.load import load_sequence_classifier
    from ..train.prepare import load_for_training

    loader = load_sequence_classifier if stage == "rm" else None
    model, tok, tok_src, vocab = load_for_training(cfg.model, cfg.tokenizer, load_dtype(precision, cfg.full, cfg.deepspeed),
                                                   cfg.resize_init, cfg.pad_vocab_to_multiple_of, loader=loader)
    if vocab["resized"]:
        raise ZhllamaError(f"the tokenizer has {vocab['tokenizer_size']:,} tokens but {cfg.model} has "
                           f"{vocab['embedding_rows_before']:,} embedding rows",
                           "preference stages start from the SFT model with its own tokenizer (resize in pt/sft)")
    if cfg.gradient_checkpointing:
        model.config.use_cache = False
    return model, tok, tok_src, vocab


def lora_settings(cfg: AlignConfig, model, stage: str):
    from ..train.lora import lora_config

    from ..model.families import lora_targets

    return lora_config(model, cfg.lora_rank, cfg.lora_alpha, cfg.lora_dropout, cfg.lora_target_modules or lora_targets(model),
                       cfg.modules_to_save, "SEQ_CLS" if stage == "rm" else "CAUSAL_LM")


def stage_arguments(cfg: AlignConfig, stage: str) -> tuple[type, dict]:
    """TRL's config class for ``stage`` and the options zhllama sets on it."""
    trl = require_trl()

    common = {"max_length": cfg.max_length, "remove_unused_columns": False}
    if stage == "rm":
        return trl.RewardConfig, {**common, "center_rewards_coefficient": None}
    if stage == "dpo":
        return trl.DPOConfig, {**common, "beta": cfg.beta, "loss_type": [cfg.loss_type]}
    return trl.RLOOConfig, {"beta": cfg.beta, "num_generations": cfg.num_generations,
                            "max_completion_length": cfg.max_new_tokens, "temperature": cfg.temperature,
                            "remove_unused_columns": False, "log_completions": False}


def require_trl():
    try:
        import trl
    except ImportError:
        raise ZhllamaError("train rm/dpo/ppo need TRL, which is not installed", "it is a dependency of zhllama: pip install 'trl>=1.0'") from None
    return trl


def _pretokenized(trainer_cls):
    """``trainer_cls`` taking zhllama's tokenized pairs as they are (DPO would re-render them with TRL's own rules)."""

    class PreTokenized(trainer_cls):
        def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
            return dataset

    PreTokenized.__name__ = f"Zhllama{trainer_cls.__name__}"
    return PreTokenized


def rm_columns(dataset):
    """RewardTrainer's columns: the whole sequences (prompt + reply) of both replies."""
    return dataset.map(lambda b: {"chosen_ids": [p + c for p, c in zip(b["prompt_ids"], b["chosen_ids"])],
                                  "rejected_ids": [p + r for p, r in zip(b["prompt_ids"], b["rejected_ids"])]},
                       batched=True, remove_columns=["prompt_ids"], desc="prompt + reply")


def ppo_prompts(files: list[str], skip_bad: bool) -> tuple[list[list[dict]], dict]:
    """The prompts of the preference files (their replies are not used: ppo samples its own)."""
    from ..data.preference import load_pairs

    pairs, report = load_pairs(files, skip_bad)
    return [p.prompt for p in pairs], report


def make_trainer(cfg: AlignConfig, stage: str, model, tok, args, data, callbacks):
    import trl
    from datasets import Dataset

    peft = None if cfg.full else lora_settings(cfg, model, stage)
    eval_set = data["validation"] if len(data["validation"]) else None
    if stage == "rm":
        return trl.RewardTrainer(model=model, args=args, train_dataset=rm_columns(data["train"]),
                                 eval_dataset=rm_columns(eval_set) if eval_set is not None else None,
                                 processing_class=tok, peft_config=peft, callbacks=callbacks)
    if stage == "dpo":
        # with LoRA the reference is the model with the adapter disabled (no second copy); a full run
        # compares with a frozen copy of the starting model
        from ..model.load import load_causal_lm

        ref = None if peft is not None else load_causal_lm(cfg.model, model.dtype)
        return _pretokenized(trl.DPOTrainer)(model=model, ref_model=ref, args=args, train_dataset=data["train"],
                                             eval_dataset=eval_set, processing_class=tok, peft_config=peft,
                                             callbacks=callbacks)
    from ..model.load import load_sequence_classifier
    from ..tokenizer.load import load_tokenizer

    reward = load_sequence_classifier(cfg.reward_model, model.dtype)
    reward_tok = load_tokenizer(cfg.reward_model)
    check_same_tokenizer(tok, reward_tok, cfg.reward_model)
    prompts = Dataset.from_dict({"prompt": data["train"]})
    return trl.RLOOTrainer(model=model, reward_funcs=reward, args=args, train_dataset=prompts, processing_class=tok,
                           reward_processing_classes=reward_tok, peft_config=peft, callbacks=callbacks)


def check_same_tokenizer(tok, other, where: str) -> None:
    from ..model.load import check_tokenizer_extends_base

    if len(tok) != len(other):
        raise ZhllamaError(f"the reward model {where} has a {len(other):,}-token tokenizer, the policy {len(tok):,}",
                           "train the reward model from the same SFT model")
    check_tokenizer_extends_base(tok, other, "the policy's tokenizer", f"the reward model's ({where})")


def build_data(cfg: AlignConfig, stage: str, tok):
    """``({"train", "validation"}, report)``; ppo reads only the prompts."""
    if stage == "ppo":
        prompts, report = ppo_prompts(cfg.train_files, cfg.skip_bad)
        return {"train": prompts, "validation": []}, report
    from ..data.preference import build_preference_dataset

    return build_preference_dataset(cfg.train_files, tok, cfg.template, cfg.max_length,
                                    validation_split=cfg.default_validation_split("dpo"), skip_bad=cfg.skip_bad,
                                    seed=cfg.seed, cache_dir=cfg.cache_dir)


def train_align(cfg: AlignConfig, stage: str, callbacks: list | None = None) -> dict:
    """Run ``rm``, ``dpo`` or ``ppo``; return ``{"metrics", "output_dir", "model_dir"}`` like ``train``."""
    from transformers import set_seed

    from ..model.families import resolve_template
    from ..templates import check_template_fits
    from ..tokenizer.chat import set_chat_template
    from ..tokenizer.load import load_tokenizer
    from ..train.lora import count_parameters
    from ..train.run import run_trainer, training_arguments

    cfg.check(stage)
    cfg = dataclasses.replace(cfg, train_files=expand_files(cfg.train_files),
                              template=resolve_template(cfg.model, template=cfg.template))  # the default rule
    check_handoff(cfg, stage)
    check_template_fits(load_tokenizer(cfg.tokenizer or cfg.model), cfg.template)  # before the weights are read
    from ..data.preference import load_pairs

    load_pairs(cfg.train_files, cfg.skip_bad)  # a bad record fails here, before the model is loaded
    out = Path(cfg.output_dir)
    claim_output_folder(out)
    plan = plan_output_dir(out, cfg.resume, cfg.overwrite)
    precision = resolve_precision(cfg.precision)
    resolve_deepspeed(cfg.deepspeed)
    set_seed(cfg.seed)  # before loading: the reward model's new score head is drawn from it
    model, tok, tok_src, vocab = load_policy(cfg, stage, precision)
    set_chat_template(tok, cfg.template)  # ppo prompts through it; checkpoints carry it
    cls, extra = stage_arguments(cfg, stage)
    args = training_arguments(cfg, out, precision, True, cls, **extra)
    with args.main_process_first(local=False, desc="preparing the output folder and data"):
        if args.process_index == 0 and plan.wipe:
            shutil.rmtree(out, ignore_errors=True)
        data, data_report = build_data(cfg, stage, tok)
    if len(data["validation"]) == 0 and args.eval_strategy != "no":
        args = training_arguments(cfg, out, precision, False, cls, **extra)
    trainer = make_trainer(cfg, stage, model, tok, args, data, callbacks)
    metrics = run_trainer(trainer, stage, plan.resume_from, perplexity=False)  # rm/dpo losses are no LM loss
    summary = {"stage": stage, "metrics": metrics, "parameters": count_parameters(trainer.model), "vocabulary": vocab,
               "data": data_report, "resumed_from": plan.resume_from, "world_size": args.world_size,
               "precision": precision}
    model_dir = save_reward_model(trainer, cfg, tok, tok_src, vocab, out, summary) if stage == "rm" else \
        _save_policy(trainer, cfg, stage, tok, tok_src, vocab, out, summary)
    return {"metrics": metrics, "output_dir": str(out), "model_dir": str(model_dir)}


def _save_policy(trainer, cfg, stage, tok, tok_src, vocab, out, summary) -> Path:
    from ..train.run import save_final

    return save_final(trainer, cfg, stage, tok, tok_src, vocab, out, summary)


def save_reward_model(trainer, cfg: AlignConfig, tok, tok_src: str, vocab: dict, out: Path, summary: dict) -> Path:
    """``final/``: the reward model as one full sequence-classification folder (a LoRA run merged into it)."""
    from ..meta import write_meta
    from ..train.prepare import save_tokenizer
    from ..train.run import publish_final

    def save_weights(tmp: Path, main: bool) -> None:
        if cfg.full:
            trainer.save_model(str(tmp))
        elif main:
            trainer.accelerator.unwrap_model(trainer.model).merge_and_unload().save_pretrained(str(tmp))

    def describe(tmp: Path) -> None:
        save_tokenizer(tok_src, tok, tmp)
        write_meta(tmp, stage="rm", base_model=cfg.model, lora=False, template=cfg.template, tokenizer_size=len(tok),
                   vocab_size=vocab["embedding_rows"])

    return publish_final(trainer, out, summary, save_weights, describe)

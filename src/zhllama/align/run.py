"""``train_align(cfg, stage)``: any preference trainer of :data:`~zhllama.align.registry.TRAINERS` on TRL.

The run folder is laid out as for ``train sft`` (checkpoint-N/, metrics.json, loss.png, final/),
and an interrupted run continues with ``resume``.  What ``final/`` holds: for a trainer with a score
head (``rm``) a full sequence-classification model (a LoRA run merged into it); for the others a
LoRA adapter on the SFT model (``zhllama merge`` folds it in) or the full model.

The pairs are tokenized by :mod:`zhllama.data.preference` (the SFT template) and handed to TRL
pre-tokenized, so TRL's own chat-template rendering never runs.
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
from .config import PreferenceConfig
from .registry import TRAINERS
from .trainer import Trainer

log = logging.getLogger(__name__)


def trainer_for(cfg: PreferenceConfig, stage: str) -> Trainer:
    """The registry entry ``stage``, checking that ``cfg`` is its schema."""
    if stage not in TRAINERS:
        raise ZhllamaError(f"unknown preference stage '{stage}'", f"use one of: {', '.join(TRAINERS)}")
    spec = TRAINERS[stage]
    if not isinstance(cfg, spec.schema):
        raise ZhllamaError(f"train {stage} takes a {spec.schema.__name__}, not a {type(cfg).__name__}",
                           f"build its options with zhllama.align.TRAINERS['{stage}'].schema(...)")
    return spec


def check_handoff(cfg: PreferenceConfig, spec: Trainer) -> None:
    """The model (and a reward model) must have been trained with ``cfg.template``; checked before loading."""
    from ..checks import is_local
    from ..meta import read_meta
    from ..model.load import check_model_dir

    folders = [("model", cfg.model)] + ([("reward_model", cfg.reward_model)] if spec.reads_reward_model else [])
    for name, folder in folders:
        if not is_local(folder):
            continue
        check_model_dir(folder)
        trained = read_meta(folder).template
        if trained and trained != cfg.template:
            raise ZhllamaError(f"{folder} was trained with the '{trained}' template but {name} is used with '{cfg.template}'",
                               f"pass --template {trained}: preference stages must see the prompts SFT saw")
    if spec.reads_reward_model and is_local(cfg.reward_model) and read_meta(cfg.reward_model).stage not in (None, "rm"):
        raise ZhllamaError(f"{cfg.reward_model} is not a reward model (it was written by stage "
                           f"'{read_meta(cfg.reward_model).stage}')", "train one with `zhllama train rm`")


def load_policy(cfg: PreferenceConfig, spec: Trainer, precision: str):
    """``(model, tokenizer, tokenizer_source, vocab_report)``; a score-head trainer loads a sequence classifier."""
    from ..model.load import load_sequence_classifier
    from ..train.prepare import load_for_training

    loader = load_sequence_classifier if spec.head == "score" else None
    # the tokenizer must fit the model already (a resize is refused below), so no init or padding rule applies
    model, tok, tok_src, vocab = load_for_training(cfg.model, cfg.tokenizer, load_dtype(precision, cfg.full, cfg.deepspeed),
                                                   "subword-mean", None, loader=loader)
    if vocab["resized"]:
        raise ZhllamaError(f"the tokenizer has {vocab['tokenizer_size']:,} tokens, new to {cfg.model} "
                           f"({vocab['embedding_rows_before']:,} embedding rows, none trained for them)",
                           "preference stages start from the SFT model with its own tokenizer (resize in pt/sft)")
    if cfg.gradient_checkpointing:
        model.config.use_cache = False
    return model, tok, tok_src, vocab


def lora_settings(cfg: PreferenceConfig, model, spec: Trainer):
    from ..train.lora import lora_config

    from ..model.families import lora_targets

    return lora_config(model, cfg.lora_rank, cfg.lora_alpha, cfg.lora_dropout, cfg.lora_target_modules or lora_targets(model),
                       cfg.modules_to_save, "SEQ_CLS" if spec.head == "score" else "CAUSAL_LM")


def build_data(cfg: PreferenceConfig, spec: Trainer, tok):
    """``({"train", "validation"}, report)``: tokenized pairs, or only the prompts (their replies are not used)."""
    from ..data.preference import build_preference_dataset, build_prompt_dataset

    if spec.data == "prompts":
        # ppo (no cache_dir option: it is not a pair trainer) caches its prompts in the default data cache
        return build_prompt_dataset(cfg.train_files, tok, cfg.skip_bad)
    return build_preference_dataset(cfg.train_files, tok, cfg.template, cfg.max_length,
                                    validation_split=cfg.validation_split or 0.0, skip_bad=cfg.skip_bad,
                                    seed=cfg.seed, cache_dir=cfg.cache_dir)


def train_align(cfg: PreferenceConfig, stage: str, callbacks: list | None = None) -> dict:
    """Run the preference trainer ``stage``; return ``{"metrics", "output_dir", "model_dir"}`` like ``train``."""
    from transformers import set_seed

    from ..data.preference import check_pairs
    from ..model.families import resolve_template
    from ..templates import check_template_fits
    from ..tokenizer.chat import set_chat_template
    from ..tokenizer.load import load_tokenizer
    from ..train.lora import count_parameters
    from ..train.run import run_trainer, training_arguments

    spec = trainer_for(cfg, stage)
    cfg.check()
    cfg = dataclasses.replace(cfg, train_files=expand_files(cfg.train_files),
                              template=resolve_template(cfg.model, template=cfg.template))  # the default rule
    check_handoff(cfg, spec)
    check_template_fits(load_tokenizer(cfg.tokenizer or cfg.model), cfg.template)  # before the weights are read
    check_pairs(cfg.train_files, cfg.skip_bad)  # a bad record fails here, before the model is loaded
    out = Path(cfg.output_dir)
    claim_output_folder(out)
    plan = plan_output_dir(out, cfg.resume, cfg.overwrite)
    precision = resolve_precision(cfg.precision)
    resolve_deepspeed(cfg.deepspeed)
    set_seed(cfg.seed)  # before loading: the reward model's new score head is drawn from it
    model, tok, tok_src, vocab = load_policy(cfg, spec, precision)
    set_chat_template(tok, cfg.template)  # ppo prompts through it; checkpoints carry it
    cls, extra = spec.arguments(cfg)
    args = training_arguments(cfg, out, precision, spec.data == "pairs", cls, **extra)
    with args.main_process_first(local=False, desc="preparing the output folder and data"):
        if args.process_index == 0 and plan.wipe:
            shutil.rmtree(out, ignore_errors=True)
        data, data_report = build_data(cfg, spec, tok)
    if len(data["validation"]) == 0 and args.eval_strategy != "no":
        args = training_arguments(cfg, out, precision, False, cls, **extra)
    peft = None if cfg.full else lora_settings(cfg, model, spec)
    trainer = spec.build(cfg, model, tok, args, data, peft, callbacks)
    metrics = run_trainer(trainer, stage, plan.resume_from, perplexity=False)  # preference losses are no LM loss
    summary = {"stage": stage, "metrics": metrics, "parameters": count_parameters(trainer.model), "vocabulary": vocab,
               "data": data_report, "resumed_from": plan.resume_from, "world_size": args.world_size,
               "precision": precision}
    save = save_reward_model if spec.head == "score" else save_policy
    model_dir = save(trainer, cfg, stage, tok, tok_src, vocab, out, summary)
    return {"metrics": metrics, "output_dir": str(out), "model_dir": str(model_dir)}


def save_policy(trainer, cfg: PreferenceConfig, stage: str, tok, tok_src: str, vocab: dict, out: Path,
                summary: dict) -> Path:
    """``final/``: the adapter or the full model, as ``train sft`` writes it."""
    from ..train.run import save_final

    return save_final(trainer, cfg, stage, tok, tok_src, vocab, out, summary)


def save_reward_model(trainer, cfg: PreferenceConfig, stage: str, tok, tok_src: str, vocab: dict, out: Path,
                      summary: dict) -> Path:
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
        write_meta(tmp, stage=stage, base_model=cfg.model, lora=False, template=cfg.template, tokenizer_size=len(tok),
                   vocab_size=vocab["embedding_rows"])

    return publish_final(trainer, out, summary, save_weights, describe)

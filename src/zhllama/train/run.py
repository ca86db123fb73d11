"""``train(cfg, stage)``: the Trainer setup shared by continued pre-training and instruction tuning.

Layout of ``output_dir``::

    checkpoint-N/   Trainer checkpoints (complete once trainer_state.json is written)
    metrics.json    final metrics, data and vocabulary reports, the log history
    loss.png        training (and validation) loss curve
    final/          the adapter (LoRA) or the full model, with tokenizer files and zhllama.json;
                    moved into place last, so a run that has final/ is complete

The same code runs in one process or under ``torchrun`` / ``accelerate launch`` / ``deepspeed``:
the Trainer reads the launcher's environment; files are written by the main process only.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
from pathlib import Path

from ..logs import claim_output_folder, quiet_terminal
from ..model.rope import apply_rope_scaling
from ..rope_scaling import RopeScaling
from .checkpoints import FINAL_DIR, plan_output_dir
from .config import TrainConfig
from .data import build_stage_data, expand_files, labelled_logits_supported, with_length_column
from .precision import load_dtype, resolve_deepspeed, resolve_precision
from .scale import check_hardware, fsdp_arguments

log = logging.getLogger(__name__)


def training_arguments(cfg: TrainConfig, out: Path, precision: str, has_eval: bool, cls=None, **extra):
    """The Trainer's arguments for ``cfg``; ``cls`` a TrainingArguments subclass (TRL's configs) given ``extra``.

    ``cfg`` is a ``TrainConfig`` or a preference trainer's schema (:mod:`zhllama.align.config`), which has
    no ``group_by_length`` and, without ``has_eval`` (ppo), no validation options."""
    from transformers import TrainingArguments

    return (cls or TrainingArguments)(
        output_dir=str(out),
        per_device_train_batch_size=cfg.batch_size,
        **evaluation_arguments(cfg, has_eval),
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        **checkpointing_arguments(cfg.gradient_checkpointing),
        learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_scheduler,
        warmup_steps=cfg.warmup_ratio,  # a float in [0, 1) is a ratio of the total steps
        weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm,
        num_train_epochs=cfg.num_train_epochs,
        max_steps=cfg.max_steps,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        use_cpu=precision == "fp32" and not _cuda(),
        logging_steps=cfg.logging_steps,
        logging_first_step=True,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit,
        seed=cfg.seed,
        deepspeed=resolve_deepspeed(cfg.deepspeed),
        **fsdp_arguments(cfg.fsdp),
        dataloader_num_workers=cfg.dataloader_num_workers,
        train_sampling_strategy="group_by_length" if getattr(cfg, "group_by_length", False) else "random",
        include_num_input_tokens_seen="non_padding",
        report_to=[r for r in cfg.report_to if r != "none"] or "none",
        disable_tqdm=False,
        ddp_find_unused_parameters=False,
        **extra,
    )


def evaluation_arguments(cfg: TrainConfig, has_eval: bool) -> dict:
    """Validation every ``eval_steps`` (default ``save_steps``; 0: only at the end) when there is a validation set."""
    if not has_eval:
        return {"eval_strategy": "no"}
    eval_steps = cfg.eval_steps if cfg.eval_steps is not None else cfg.save_steps
    return {"per_device_eval_batch_size": cfg.eval_batch_size or cfg.batch_size,
            "eval_strategy": "steps" if eval_steps > 0 else "no", "eval_steps": eval_steps if eval_steps > 0 else None}


def checkpointing_arguments(enabled: bool) -> dict:
    """Activation recomputation flags under their current name (transformers 5 renamed them)."""
    import dataclasses

    from transformers import TrainingArguments

    if not enabled:
        return {}
    names = {f.name for f in dataclasses.fields(TrainingArguments)}
    key = "activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing"
    return {key: True, f"{key}_kwargs": {"use_reentrant": False}}


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def build_model(cfg: TrainConfig, precision: str):
    """Base model (resized to the tokenizer when needed), wrapped with LoRA unless ``full``."""
    from .lora import apply_lora, count_parameters, modules_to_save_for
    from .prepare import load_for_training
    from .scale import loading_options, prepare_qlora

    model, tok, tok_src, vocab = load_for_training(
        cfg.model, cfg.tokenizer, load_dtype(precision, cfg.full, cfg.deepspeed), cfg.resize_init,
        cfg.pad_vocab_to_multiple_of, options=loading_options(cfg, cfg.modules_to_save))
    if cfg.qlora:
        model = prepare_qlora(model, cfg.gradient_checkpointing)
    if cfg.rope_scaling:
        apply_rope_scaling(model, cfg.rope_scaling)  # before LoRA wraps it; the full model's config.json keeps it
    if not cfg.full:
        from ..checks import is_local
        from ..meta import read_meta
        from ..model.families import lora_targets

        untrained = is_local(cfg.model) and read_meta(cfg.model).stage == "resize"
        to_save = modules_to_save_for(cfg.modules_to_save, vocab["resized"], untrained_rows=untrained)
        targets = cfg.lora_target_modules or lora_targets(model)
        model = apply_lora(model, cfg.lora_rank, cfg.lora_alpha, cfg.lora_dropout, targets, to_save)
    if cfg.gradient_checkpointing:
        model.config.use_cache = False  # the KV cache is useless in training and conflicts with recomputation
    return model, tok, tok_src, vocab, count_parameters(model)


def train(cfg: TrainConfig, stage: str, callbacks: list | None = None) -> dict:
    """Run stage ``pt`` or ``sft``; return ``{"metrics": ..., "output_dir": ..., "model_dir": ...}``."""
    from transformers import Trainer, set_seed

    from ..model.families import resolve_template
    from ..templates import check_template_fits
    from ..tokenizer.chat import set_chat_template
    from ..tokenizer.load import load_tokenizer

    cfg.check(stage)
    template = resolve_template(cfg.model, template=cfg.template) if stage == "sft" else None  # the default rule
    if template:
        check_template_fits(load_tokenizer(cfg.tokenizer or cfg.model), template)  # before the weights are read
    cfg = dataclasses.replace(cfg, train_files=expand_files(cfg.train_files), template=template)
    out = Path(cfg.output_dir)
    claim_output_folder(out)
    plan = plan_output_dir(out, cfg.resume, cfg.overwrite)  # pure reads: every rank decides the same
    precision = resolve_precision(cfg.precision)
    resolve_deepspeed(cfg.deepspeed)  # a missing DeepSpeed or config fails before the model is loaded
    check_hardware(cfg)  # and so does --qlora without bitsandbytes, or flash_attention_2 without flash-attn or CUDA
    set_seed(cfg.seed)
    # The model is loaded before TrainingArguments exist, so ZeRO-3 does not partition it at load
    # time (zero.Init): a resize can then touch whole embedding matrices; DeepSpeed shards it later.
    model, tok, tok_src, vocab, params = build_model(cfg, precision)
    set_chat_template(tok, cfg.template or "none")  # the Trainer saves it into checkpoints (pt: none)
    args = training_arguments(cfg, out, precision, has_eval=True)
    with args.main_process_first(local=False, desc="preparing the output folder and data"):
        if args.process_index == 0 and plan.wipe:
            shutil.rmtree(out, ignore_errors=True)
        data, collator, data_report = build_stage_data(cfg, stage, tok, labelled_logits_supported(model))
    if len(data["validation"]) == 0 and args.eval_strategy != "no":
        args = training_arguments(cfg, out, precision, has_eval=False)
    train_set = with_length_column(data["train"]) if cfg.group_by_length else data["train"]
    trainer = Trainer(model=model, args=args, data_collator=collator, train_dataset=train_set,
                      eval_dataset=data["validation"] if len(data["validation"]) else None,
                      processing_class=tok, callbacks=callbacks)
    metrics = run_trainer(trainer, stage, plan.resume_from)
    summary = {"stage": stage, "metrics": metrics, "parameters": params, "vocabulary": vocab, "data": data_report,
               "resumed_from": plan.resume_from, "world_size": args.world_size, "precision": precision,
               "qlora": cfg.qlora, "sharding": _sharding(trainer)}
    model_dir = save_final(trainer, cfg, stage, tok, tok_src, vocab, out, summary,
                           pad_to_multiple_of=cfg.pad_vocab_to_multiple_of, rope_scaling=_adapter_rope_spec(cfg))
    return {"metrics": metrics, "output_dir": str(out), "model_dir": str(model_dir)}


def _sharding(trainer) -> str | None:
    """How the run was actually sharded (the launcher and the options decide it together)."""
    if trainer.is_fsdp_enabled:
        return f"fsdp{trainer.accelerator.state.fsdp_plugin.fsdp_version}"
    return "deepspeed" if trainer.is_deepspeed_enabled else None


def run_trainer(trainer, stage: str, resume_from: str | None, perplexity: bool = True) -> dict:
    """Train (from ``resume_from`` when given) under zhllama's step bar; the Trainer's metrics plus
    the final validation metrics, tokens seen and training tokens/s (this run's share only)."""
    if quiet_terminal():
        from .progress import use_step_bar

        use_step_bar(trainer, f"train {stage}")
    seen_before = _tokens_seen_at(resume_from)
    result = trainer.train(resume_from_checkpoint=resume_from)
    metrics = dict(result.metrics)
    if trainer.eval_dataset is not None:
        metrics.update(final_evaluation(trainer, perplexity))
    metrics["tokens_seen"] = int(trainer.state.num_input_tokens_seen) or _logged_tokens(trainer.state.log_history)
    metrics["train_tokens_per_second"] = (metrics["tokens_seen"] - seen_before) / max(metrics["train_runtime"], 1e-9)
    return metrics


def final_evaluation(trainer, perplexity: bool = True) -> dict:
    """Validation metrics at the last step (reused when the Trainer has just evaluated there);
    ``perplexity`` adds exp(eval_loss), meaningful only for a language-model loss."""
    import math

    last = [h for h in trainer.state.log_history if "eval_loss" in h]
    if last and last[-1].get("step") == trainer.state.global_step:
        ev = {k: v for k, v in last[-1].items() if k.startswith("eval_")}
    else:
        ev = trainer.evaluate()
    if not perplexity:
        return ev
    loss = ev.get("eval_loss")
    return {**ev, "eval_perplexity": math.exp(min(loss, 50.0)) if loss is not None else None}


def _logged_tokens(history: list[dict]) -> int:
    """TRL's own token count (``num_tokens``), for trainers whose inputs the Trainer cannot count."""
    counts = [h["num_tokens"] for h in history if "num_tokens" in h]
    return int(counts[-1]) if counts else 0


def _tokens_seen_at(checkpoint: str | None) -> int:
    if not checkpoint:
        return 0
    import json

    state = json.loads((Path(checkpoint) / "trainer_state.json").read_text(encoding="utf-8"))
    return int(state.get("num_input_tokens_seen") or 0)


def save_final(trainer, cfg: TrainConfig, stage: str, tok, tok_src: str, vocab: dict, out: Path, summary: dict,
               **meta) -> Path:
    """``final/``: the adapter (checked against the trained model) or the full model, with tokenizer and metadata
    (``meta``: more ``zhllama.json`` fields, e.g. pt/sft's vocabulary padding and an adapter's RoPE scaling)."""
    from ..meta import write_meta
    from .lora import verify_saved_adapter
    from .prepare import save_tokenizer

    def describe(tmp: Path) -> None:
        if not cfg.full:
            verify_saved_adapter(tmp, trainer.model)
        save_tokenizer(tok_src, tok, tmp)
        write_meta(tmp, stage=stage, base_model=cfg.model, lora=not cfg.full, template=cfg.template,
                   tokenizer_size=len(tok), vocab_size=vocab["embedding_rows"], **meta)

    return publish_final(trainer, out, summary, lambda tmp, main: trainer.save_model(str(tmp)), describe)


def publish_final(trainer, out: Path, summary: dict, save_weights, describe) -> Path:
    """Write ``final/`` through a fixed temp folder every rank agrees on, then move it into place.

    ``save_weights(tmp, is_main)`` runs on every rank (ZeRO-3 gathers the weights collectively);
    ``describe(tmp)`` (tokenizer, ``zhllama.json``) only on the main one, which then adds the chat
    template and the run's report.  (``zhllama.io.atomic_dir`` picks a random temp name per process;
    here all ranks must write into the same folder, so the name is fixed.)
    """
    from ..model.families import resolve_template
    from ..tokenizer.chat import set_chat_template
    from .report import write_run_outputs

    final, tmp = out / FINAL_DIR, out / f".{FINAL_DIR}.partial"
    main = trainer.is_world_process_zero()
    if main:
        shutil.rmtree(tmp, ignore_errors=True)
    trainer.accelerator.wait_for_everyone()
    save_weights(tmp, main)
    trainer.accelerator.wait_for_everyone()
    if main:
        describe(tmp)
        set_chat_template(tmp, resolve_template(tmp))
        write_run_outputs(out, summary, trainer.state.log_history)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        log.info("wrote %s", final)
    trainer.accelerator.wait_for_everyone()
    return final


def _adapter_rope_spec(cfg: TrainConfig) -> RopeScaling | None:
    """An adapter's config.json is the base's: its RoPE scaling travels in zhllama.json (merge and load apply it)."""
    return None if cfg.full else cfg.rope_scaling

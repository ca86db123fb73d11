"""``TrainConfig``: one dataclass for ``zhllama train pt`` and ``zhllama train sft``.

A YAML recipe (``recipes/train/*.yaml``) maps onto it with :func:`zhllama.config.load_yaml`
and every field is also a command-line flag (``--lora-rank 64`` overrides ``lora_rank: 64``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..config import check_ranges, option
from ..errors import ZhllamaError
from ..rope_scaling import RopeScaling

TRAIN_STAGES = ("pt", "sft")
TRAIN_ROPE_KINDS = ("linear", "yarn")  # dynamic NTK is an inference-time rule, not a trained one


@dataclass
class TrainConfig:
    # --- what to train, on what, where to write ---
    model: str | None = option("base model: a Hugging Face folder or hub id (required)", None)
    train_files: list[str] = option("training data files (.txt/.jsonl/.json/.gz; pt also .parquet) (required unless --data)",
                                    factory=list)
    data: str | None = option("pt: a folder made by `zhllama data prepare` (instead of train_files)", None, metavar="DIR")
    output_dir: str | None = option("run folder: checkpoints, metrics.json, loss.png and final/ (required)", None)
    tokenizer: str | None = option("tokenizer folder; default the model's own. A larger one resizes the embeddings", None)
    # --- data ---
    validation_split: float = option("fraction held out for validation loss/perplexity (pt default 0.01)", None, low=0, high=0.99)
    text_field: str = option("pt: the text field of .jsonl records", "text")
    block_size: int = option("pt: tokens per training block (documents are concatenated, EOS between)", 512, low=1)
    template: str | None = option("sft: chat template (alpaca, llama2-zh, llama2, chatml, llama3, qwen, native, none); "
                                  "default: the model's zhllama.json, else its family's default, else none", None)
    max_length: int = option("sft: longest example in tokens (longer ones are truncated safely)", 512, low=1)
    skip_bad: bool = option("skip malformed records (counted in the report) instead of stopping", False)
    cache_dir: str | None = option("datasets cache folder for tokenized data", None)
    num_proc: int = option("processes for tokenization", 1, low=1)
    # --- model / vocabulary ---
    resize_init: str = option("init of new embedding rows: subword-mean, mean or random", "subword-mean")
    pad_vocab_to_multiple_of: int | None = option("pad embedding rows to a multiple (64/128 for GPU efficiency)", None, low=1)
    rope_scaling: RopeScaling | None = option("train for a longer context with RoPE scaling: linear:F (position interpolation) or "
                                      "yarn:F, with a --block-size up to F times the model's positions; saved in "
                                      "config.json (an adapter's zhllama.json)", None, metavar="KIND:FACTOR")
    # --- LoRA or full ---
    full: bool = option("train all parameters instead of LoRA", False)
    lora_rank: int = option("LoRA rank r", 8, low=1)
    lora_alpha: float = option("LoRA alpha (scale = alpha / r)", 32.0, positive=True)
    lora_dropout: float = option("LoRA dropout", 0.05, low=0, high=0.99)
    lora_target_modules: list[str] | None = option("modules that get LoRA adapters (default: the model family's, "
                                                   "every attention and MLP projection)", None)
    modules_to_save: list[str] = option("modules trained fully and saved in the adapter (embed_tokens lm_head)",
                                       factory=list)
    # --- optimisation ---
    precision: Literal["auto", "bf16", "fp16", "fp32"] = option("auto: bf16 (or fp16) on GPU, fp32 on CPU", "auto")
    batch_size: int = option("per-device training batch size", 1, low=1)
    eval_batch_size: int | None = option("per-device evaluation batch size (default batch_size)", None, low=1)
    gradient_accumulation_steps: int = option("micro-batches per optimizer step", 1, low=1)
    gradient_checkpointing: bool = option("recompute activations to save memory", False)
    learning_rate: float = option("peak learning rate", 2e-4, positive=True)
    lr_scheduler: str = option("linear, cosine, constant, constant_with_warmup, ...", "cosine")
    warmup_ratio: float = option("fraction of steps for linear warm-up", 0.05, low=0, high=1)
    weight_decay: float = option("AdamW weight decay", 0.0, low=0)
    max_grad_norm: float = option("gradient clipping", 1.0, low=0)
    num_train_epochs: float = option("epochs (ignored when max_steps > 0)", 1.0, positive=True)
    max_steps: int = option("stop after this many optimizer steps (-1: use epochs)", -1, low=-1)
    group_by_length: bool = option("sft: batch examples of similar length (less padding)", False)
    # --- bookkeeping ---
    logging_steps: int = option("log the loss every N steps", 10, low=1)
    save_steps: int = option("write a checkpoint every N steps", 500, low=1)
    save_total_limit: int | None = option("keep at most N checkpoints", 3, low=1)
    eval_steps: int | None = option("evaluate every N steps (default save_steps; 0 = never)", None, low=0)
    seed: int = option("seed for initialisation and data order", 42)
    deepspeed: str | None = option("DeepSpeed config JSON, or zero2 / zero3 for the shipped ones", None)
    fsdp: Literal["full_shard", "shard_grad_op"] | None = option(
        "shard the model over the processes with PyTorch FSDP2 (through accelerate): full_shard (parameters, gradients, "
        "optimizer state) or shard_grad_op (gradients and optimizer state); launch with torchrun", None)
    qlora: bool = option("QLoRA: load the base model in 4-bit NF4 (bitsandbytes) and train LoRA on top; embeddings and "
                         "head stay in full precision", False)
    attn: Literal["sdpa", "eager", "flash_attention_2"] | None = option(
        "attention kernel (default: transformers' choice, sdpa); flash_attention_2 needs flash-attn and a CUDA GPU", None)
    dataloader_num_workers: int = option("data loader worker processes", 0, low=0)
    report_to: list[str] = option("trackers for Trainer (none, tensorboard, wandb)", factory=lambda: ["none"])
    resume: bool = option("continue from the last complete checkpoint in output_dir", False)
    overwrite: bool = option("delete an existing output_dir and start over", False)

    def check(self, stage: str) -> "TrainConfig":
        """Raise a clear error for a missing or inconsistent field; return self."""
        if stage not in TRAIN_STAGES:
            raise ZhllamaError(f"unknown training stage '{stage}'", f"use one of: {', '.join(TRAIN_STAGES)}")
        if self.data and stage != "pt":
            raise ZhllamaError(f"'data' (a prepared folder) is for pt, not {stage}", "pass --train-files")
        if self.data and self.train_files:
            raise ZhllamaError("both 'data' and 'train_files' are set", "give one: --data DIR (prepared) or --train-files FILE ...")
        check_run_options(self, prepared=stage == "pt", with_template=stage == "sft")
        if self.rope_scaling is not None:
            self.rope_scaling.require(TRAIN_ROPE_KINDS)
        self.check_scale()
        if self.resize_init not in ("subword-mean", "mean", "random"):
            raise ZhllamaError(f"'resize_init' is '{self.resize_init}'", "use subword-mean, mean or random")
        return self

    def check_scale(self) -> None:
        """QLoRA, FSDP and DeepSpeed combinations zhllama does not run."""
        if self.qlora and self.full:
            raise ZhllamaError("qlora and full are both set", "QLoRA trains LoRA adapters on a 4-bit base; drop --full")
        if self.qlora and (self.fsdp or self.deepspeed):
            raise ZhllamaError("qlora cannot be combined with fsdp or deepspeed here",
                               "run QLoRA on one GPU per process (torchrun, plain data parallel), or drop --qlora")

    def default_validation_split(self, stage: str) -> float:
        if self.validation_split is not None:
            return self.validation_split
        return 0.01 if stage == "pt" else 0.0


def check_run_options(cfg, prepared: bool = False, with_template: bool = False) -> None:
    """The checks of the options every trainer shares (``TrainConfig`` and the preference trainers' schemas);
    ``prepared``: the trainer may read a prepared folder (``data``) instead of ``train_files``; ``with_template``:
    the chat template is used, so a misspelt one fails here, before the model is loaded (None: the default rule,
    :func:`zhllama.model.families.resolve_template`, picks it later)."""
    for name in ("model", "output_dir"):
        if not getattr(cfg, name):
            raise ZhllamaError(f"'{name}' is not set", f"add '{name}:' to the recipe or pass --{name.replace('_', '-')}")
    if not cfg.train_files and not getattr(cfg, "data", None):
        raise ZhllamaError("'train_files' is not set", "add 'train_files:' to the recipe or pass --train-files FILE ..."
                           + (" (or --data DIR from `zhllama data prepare`)" if prepared else ""))
    if cfg.resume and cfg.overwrite:
        raise ZhllamaError("resume and overwrite are both set", "choose one: --resume continues, --overwrite starts over")
    check_ranges(cfg)  # the bounds declared on the fields (CLI and recipes check them when they are read)
    if cfg.fsdp and cfg.deepspeed:
        raise ZhllamaError("fsdp and deepspeed are both set", "choose one way of sharding the model")
    if with_template and cfg.template:
        from ..templates import get_template

        get_template(cfg.template)


@dataclass(kw_only=True)
class MergeSettings:
    """How merged weights are written: the pipeline's ``merge:`` section."""

    dtype: str = option("float16, bfloat16, float32 or auto (the base model's dtype)", "auto")
    max_shard_size: str = option("largest safetensors shard", "2GB")


@dataclass(kw_only=True)
class MergeConfig(MergeSettings):
    """``zhllama merge``: its options."""

    base: str = option("base model folder or hub id")
    lora: list[str] = option("adapter folder; repeat to merge several in order (e.g. LLaMA-Plus then Alpaca-Plus)",
                             metavar="ADAPTER", repeat="append")
    out: str = option("output folder")
    overwrite: bool = option("replace an existing output folder", False)

"""`zhllama train pt|sft` and `zhllama merge`."""

from __future__ import annotations

import argparse

TRAIN_HELP = {
    "pt": ("continued pre-training on plain text (LoRA or full)",
           "Continue pre-training a LLaMA-family model on text files (.txt, .jsonl, .json, .parquet, .gz) or a "
           "folder made by `zhllama data prepare` (--data): documents are tokenized once into token shards, joined "
           "with EOS and cut into block_size blocks. A tokenizer larger than the model's "
           "embeddings resizes them first. LoRA by default (--full for all parameters)."),
    "sft": ("instruction tuning on Alpaca / ShareGPT / messages data",
            "Instruction-tune on Alpaca JSON/JSONL, ShareGPT `conversations` or OpenAI `messages` records with a "
            "chat template; loss falls only on the responses. LoRA by default (--full for all parameters)."),
}

EPILOG = ("Every recipe key is also a flag (recipe key lora_rank = flag --lora-rank); flags override the recipe. "
          "Under torchrun / accelerate launch / deepspeed the same command trains on several GPUs or machines.")


def register(sub: argparse._SubParsersAction) -> None:
    from ..config import add_dataclass_args
    from .config import MergeConfig, TrainConfig

    p = sub.add_parser("train", help="continued pre-training (pt) or instruction tuning (sft)",
                       description="Train with Hugging Face Trainer + peft LoRA (or full-parameter).")
    tsub = p.add_subparsers(dest="train_stage", metavar="STAGE", required=True)
    for stage, (short, long) in TRAIN_HELP.items():
        sp = tsub.add_parser(stage, help=short, description=long, epilog=EPILOG)
        sp.add_argument("--config", help="YAML recipe (see recipes/train/); optional when the flags say enough")
        add_dataclass_args(sp, TrainConfig)
        sp.set_defaults(func=_train, stage=stage)
    p.stages = tsub  # zhllama/align/cli.py adds the preference trainers here (docs/align.md)

    m = sub.add_parser("merge", help="merge LoRA adapters into a full model",
                       description="Merge one or more LoRA adapters, in order, into the base model (resized and "
                                   "trained embeddings/head included) and write a full Hugging Face model folder "
                                   "with sharded safetensors, tokenizer and generation config.")
    add_dataclass_args(m, MergeConfig, overrides=False)
    m.set_defaults(func=_merge)


def _train(args: argparse.Namespace) -> int:
    from ..config import apply_cli_overrides, load_yaml
    from .config import TrainConfig
    from .run import train

    cfg = load_yaml(args.config, TrainConfig) if args.config else TrainConfig()
    cfg = apply_cli_overrides(cfg, args)
    result = train(cfg, args.stage)
    m = result["metrics"]
    line = f"train loss {m.get('train_loss', float('nan')):.4f}"
    if m.get("eval_loss") is not None:
        line += f", validation loss {m['eval_loss']:.4f} (perplexity {m['eval_perplexity']:.2f})"
    print(f"{line}; wrote {result['model_dir']}")
    return 0


def _merge(args: argparse.Namespace) -> int:
    from ..config import from_args
    from .config import MergeConfig
    from .merge import merge_adapters

    cfg = from_args(MergeConfig, args)
    out = merge_adapters(cfg.base, cfg.lora, cfg.out, dtype=cfg.dtype, max_shard_size=cfg.max_shard_size,
                         overwrite=cfg.overwrite)
    print(f"wrote {out}")
    return 0

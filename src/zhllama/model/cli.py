"""`zhllama model init | resize`; the options come from ``InitConfig`` and ``ResizeConfig``."""

from __future__ import annotations

import argparse

from ..config import add_dataclass_args, from_args


def register(sub: argparse._SubParsersAction) -> None:
    from .init import InitConfig
    from .resize import ResizeConfig

    p = sub.add_parser("model", help="model utilities (init, resize)")
    msub = p.add_subparsers(dest="model_command", metavar="ACTION", required=True)
    init = msub.add_parser("init", help="write a randomly initialised model (llama, qwen2, qwen3) for a tokenizer",
                           description="Write a randomly initialised model of a family (--family llama, qwen2, qwen3; Hugging Face "
                                       "format, safetensors) whose vocabulary is the tokenizer's.")
    add_dataclass_args(init, InitConfig, overrides=False)
    init.set_defaults(func=_init)

    resize = msub.add_parser("resize", help="grow a model's embeddings to an extended tokenizer",
                             description="Grow the input embeddings and lm_head of --model to the vocabulary of "
                                         "--tokenizer (which must start with the base tokenizer's pieces, in order) "
                                         "and write the model with that tokenizer to --out. New rows start from what "
                                         "the model knows (--init subword-mean). Training resizes by itself; this "
                                         "runs the step alone.")
    add_dataclass_args(resize, ResizeConfig, overrides=False)
    resize.set_defaults(func=_resize)


def _init(args: argparse.Namespace) -> int:
    from .init import InitConfig, init_model

    out = init_model(from_args(InitConfig, args))
    print(f"wrote {out}")
    return 0


def _resize(args: argparse.Namespace) -> int:
    from .resize import ResizeConfig, resize_model

    cfg = from_args(ResizeConfig, args)
    r = resize_model(cfg)
    print(f"wrote {cfg.out}: {r['old_rows']:,} -> {r['new_rows']:,} embedding rows ({r['init']}: "
          f"{r['initialised_from_subwords']:,} from subwords, {r['fallback_mean']:,} mean, {r['padding_rows']:,} padding)")
    return 0

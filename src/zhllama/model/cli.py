"""`zhllama model init`."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("model", help="model utilities (init)")
    msub = p.add_subparsers(dest="model_command", metavar="ACTION", required=True)
    init = msub.add_parser("init", help="write a randomly initialised LLaMA model for a tokenizer",
                           description="Write a randomly initialised LLaMA-architecture model (Hugging Face "
                                       "format, safetensors) whose vocabulary is the tokenizer's.")
    init.add_argument("--tokenizer", required=True, help="tokenizer folder (from `zhllama tokenizer merge`)")
    init.add_argument("--hidden-size", type=int, default=256)
    init.add_argument("--layers", type=int, default=4)
    init.add_argument("--heads", type=int, default=4)
    init.add_argument("--kv-heads", type=int, default=None, help="key/value heads (GQA); default = heads")
    init.add_argument("--intermediate-size", type=int, default=None, help="MLP width; default LLaMA's 8h/3")
    init.add_argument("--max-position", type=int, default=2048)
    init.add_argument("--rope-theta", type=float, default=10000.0)
    init.add_argument("--seed", type=int, default=0)
    init.add_argument("--out", required=True)
    init.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    init.set_defaults(func=_init)


def _init(args: argparse.Namespace) -> int:
    from .init import InitConfig, init_model

    cfg = InitConfig(tokenizer=args.tokenizer, out=args.out, hidden_size=args.hidden_size, layers=args.layers,
                     heads=args.heads, kv_heads=args.kv_heads, intermediate_size=args.intermediate_size,
                     max_position=args.max_position, rope_theta=args.rope_theta, seed=args.seed,
                     overwrite=args.overwrite)
    out = init_model(cfg)
    print(f"wrote {out}")
    return 0

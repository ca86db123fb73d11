"""`zhllama train rm|dpo|ppo|orpo`: the trainers of align/registry.py, added to `zhllama train` after train/cli.py."""

from __future__ import annotations

import argparse

def register(sub: argparse._SubParsersAction) -> None:
    """Add the preference trainers to ``zhllama train`` (registered before by zhllama/train/cli.py)."""
    from ..train.cli import EPILOG

    register_stages(sub.choices["train"].stages, EPILOG)


def register_stages(tsub, epilog: str) -> None:
    """Add one ``zhllama train NAME`` per trainer of the registry, its options from the trainer's schema."""
    from ..config import add_dataclass_args
    from .registry import TRAINERS

    for name, spec in TRAINERS.items():
        sp = tsub.add_parser(name, help=spec.help, description=spec.description, epilog=epilog)
        sp.add_argument("--config", help="YAML recipe; optional when the flags say enough")
        add_dataclass_args(sp, spec.schema)
        sp.set_defaults(func=_train, stage=name)


def _train(args: argparse.Namespace) -> int:
    from ..config import apply_cli_overrides, load_yaml
    from . import train_align
    from .registry import TRAINERS

    spec = TRAINERS[args.stage]
    cfg = load_yaml(args.config, spec.schema) if args.config else spec.schema()
    cfg = apply_cli_overrides(cfg, args)
    result = train_align(cfg, args.stage)
    m = result["metrics"]
    print(f"train loss {m.get('train_loss', float('nan')):.4f}{spec.summary(m)}; wrote {result['model_dir']}")
    return 0

"""`zhllama train rm|dpo|ppo|orpo` (the trainers of align/registry.py, added by zhllama/cli.py after train/cli.py) and `zhllama eval reward` (by eval/cli.py)."""

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


def register_reward_eval(esub) -> None:
    """Add ``reward`` to ``zhllama eval``."""
    from ..config import add_dataclass_args
    from .config import RewardEvalConfig

    p = esub.add_parser("reward", help="reward model: pair accuracy and score margins on preference pairs",
                        description="Score held-out preference pairs with a reward model (`zhllama train rm`): the "
                                    "share of pairs whose chosen reply scores above the rejected one, and the "
                                    "margins (chosen minus rejected). Prints JSON.")
    add_dataclass_args(p, RewardEvalConfig, overrides=False)
    p.set_defaults(func=_eval_reward)


def _eval_reward(args: argparse.Namespace) -> int:
    import json

    from ..config import from_args
    from ..io import write_json_atomic
    from .config import RewardEvalConfig
    from .reward import evaluate_reward

    cfg = from_args(RewardEvalConfig, args)
    result = evaluate_reward(cfg.model, cfg.data, template=cfg.template, max_length=cfg.max_length,
                             batch_size=cfg.batch_size, skip_bad=cfg.skip_bad, device=cfg.device)
    if cfg.out:
        write_json_atomic(cfg.out, result)
    print(json.dumps(result, ensure_ascii=False, indent=2))
    return 0

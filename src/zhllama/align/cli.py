"""`zhllama train rm|dpo|ppo` (added by zhllama/cli.py after train/cli.py) and `zhllama eval reward` (by eval/cli.py)."""

from __future__ import annotations

import argparse

ALIGN_HELP = {
    "rm": ("reward model on preference pairs (prompt, chosen, rejected)",
           "Train a reward model: the model with a scalar score head (LlamaForSequenceClassification), trained with "
           "the pairwise loss -log sigmoid(score(chosen) - score(rejected)) on preference pairs rendered with the SFT "
           "chat template. LoRA by default (merged into final/ on saving) or --full."),
    "dpo": ("Direct Preference Optimization on preference pairs",
            "Direct Preference Optimization of an instruction-tuned model on preference pairs (TRL DPOTrainer): "
            "--beta and --loss-type sigmoid|ipo|hinge. With LoRA the reference model is the same model with the "
            "adapter disabled (no second copy); final/ is an adapter for `zhllama merge`."),
    "ppo": ("online RL with a reward model (TRL's RLOO trainer)",
            "Online reinforcement learning from a reward model (--reward-model, from `zhllama train rm`): replies "
            "are sampled for the prompts of the preference files, scored, and the policy is updated with a KL "
            "penalty (--beta) toward the starting model. TRL 1.x removed its PPO trainer; this runs RLOO "
            "(REINFORCE leave-one-out: --num-generations replies per prompt, each baselined by the others' mean "
            "reward), which needs no value model."),
}


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``rm``, ``dpo`` and ``ppo`` to ``zhllama train`` (registered before by zhllama/train/cli.py)."""
    from ..train.cli import EPILOG

    register_stages(sub.choices["train"].stages, EPILOG)


def register_stages(tsub, epilog: str) -> None:
    """Add ``rm``, ``dpo`` and ``ppo`` to ``zhllama train``."""
    from ..config import add_dataclass_args
    from .config import AlignConfig

    for stage, (short, long) in ALIGN_HELP.items():
        sp = tsub.add_parser(stage, help=short, description=long, epilog=epilog)
        sp.add_argument("--config", help="YAML recipe; optional when the flags say enough")
        add_dataclass_args(sp, AlignConfig)
        sp.set_defaults(func=_train, stage=stage)


def _train(args: argparse.Namespace) -> int:
    from ..config import apply_cli_overrides, load_yaml
    from . import train_align
    from .config import AlignConfig

    cfg = load_yaml(args.config, AlignConfig) if args.config else AlignConfig()
    cfg = apply_cli_overrides(cfg, args)
    result = train_align(cfg, args.stage)
    print(f"{summary_line(args.stage, result['metrics'])}; wrote {result['model_dir']}")
    return 0


def summary_line(stage: str, m: dict) -> str:
    line = f"train loss {m.get('train_loss', float('nan')):.4f}"
    if stage == "rm" and m.get("eval_accuracy") is not None:
        line += f", validation pair accuracy {m['eval_accuracy']:.1%} (mean margin {m['eval_margin']:.3f})"
    if stage == "dpo" and m.get("eval_rewards/margins") is not None:
        line += (f", validation reward margin {m['eval_rewards/margins']:.4f} "
                 f"(accuracy {m['eval_rewards/accuracies']:.1%})")
    return line


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

"""``zhllama eval reward``: a reward model (``zhllama train rm``) scored on held-out preference pairs
(:func:`zhllama.align.reward.evaluate_reward`)."""

from __future__ import annotations

import json

from ..align.config import RewardEvalConfig
from .task import EvalTask


def reward_command(cfg: RewardEvalConfig) -> int:
    from ..align.reward import evaluate_reward
    from ..io import write_json_atomic

    result = evaluate_reward(cfg.model, cfg.data, template=cfg.template, max_length=cfg.max_length,
                             batch_size=cfg.batch_size, skip_bad=cfg.skip_bad, device=cfg.device)
    if cfg.out:
        write_json_atomic(cfg.out, result)
    print(json.dumps(result, ensure_ascii=False, indent=2))
    return 0


TASK = EvalTask("reward", RewardEvalConfig, reward_command,
                help="reward model: pair accuracy and score margins on preference pairs",
                description="Score held-out preference pairs with a reward model (`zhllama train rm`): the share of "
                            "pairs whose chosen reply scores above the rejected one, and the margins (chosen minus "
                            "rejected). Prints JSON.")

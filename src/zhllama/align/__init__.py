"""Preference alignment after ``train sft``: the trainers of :data:`TRAINERS` (``.registry``): a reward
model (``train rm``), DPO (``train dpo``), online RL with the reward model (``train ppo``, run by TRL's
RLOO trainer: TRL 1.x no longer ships PPO) and ORPO (``train orpo``)."""

from .config import PairConfig, PreferenceConfig
from .registry import TRAINERS

__all__ = ["PairConfig", "PreferenceConfig", "TRAINERS", "train_align"]


def train_align(cfg: PreferenceConfig, stage: str, callbacks: list | None = None) -> dict:
    """Run the trainer ``stage`` with its options ``cfg`` (``TRAINERS[stage].schema``); see
    :func:`zhllama.align.run.train_align`."""
    from .run import train_align as run

    return run(cfg, stage, callbacks)

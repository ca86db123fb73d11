"""Preference alignment after ``train sft``: a reward model (``train rm``), DPO (``train dpo``) and online
RL with the reward model (``train ppo``, run by TRL's RLOO trainer: TRL 1.x no longer ships PPO)."""

from .config import ALIGN_STAGES, AlignConfig

__all__ = ["ALIGN_STAGES", "AlignConfig", "train_align"]


def train_align(cfg: AlignConfig, stage: str, callbacks: list | None = None) -> dict:
    """Run ``rm``, ``dpo`` or ``ppo``; see :func:`zhllama.align.run.train_align`."""
    from .run import train_align as run

    return run(cfg, stage, callbacks)

"""The preference trainers, one entry each (:class:`~zhllama.align.trainer.Trainer`): ``zhllama train NAME``,
the pipeline stage NAME and :func:`zhllama.align.train_align` all read this table.

Adding a trainer: a module with its schema, TRL arguments, builder and ``TRAINER`` entry, and its line here.
"""

from __future__ import annotations

from . import dpo, orpo, ppo, rm
from .trainer import Trainer

TRAINERS: dict[str, Trainer] = {t.name: t for t in (
    rm.TRAINER,
    dpo.TRAINER,
    ppo.TRAINER,
    orpo.TRAINER,
)}

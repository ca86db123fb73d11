"""``Trainer``: what one preference trainer is (a registry entry of :mod:`.registry`), and the helpers
the trainers' modules share.

A trainer's module (:mod:`.rm`, :mod:`.dpo`, :mod:`.ppo`, :mod:`.orpo`) declares its schema (a
dataclass of its options), its TRL arguments, how it builds the TRL trainer, and one ``TRAINER``
entry; :func:`zhllama.align.run.train_align` runs any entry the same way (checks, model, data,
checkpoints, ``final/``), and the CLI (``zhllama train NAME``) and the pipeline stage of the same name
read the entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Literal

from ..errors import ZhllamaError


def no_summary(metrics: dict) -> str:
    return ""


@dataclass(frozen=True)
class Trainer:
    """One preference trainer.

    ``schema``: its options (the ``--help`` of ``zhllama train NAME``, its recipe section and its Python
    argument); ``arguments(cfg) -> (TRL config class, options zhllama sets on it)``;
    ``build(cfg, model, tokenizer, args, data, peft_config, callbacks) -> trainer``;
    ``help`` / ``description``: its line in ``zhllama train --help`` and its own ``--help`` text;
    ``head``: ``"score"`` trains a scalar head (a reward model, saved merged) instead of the LM head;
    ``data``: ``"pairs"`` (tokenized preference pairs, with a validation split) or ``"prompts"``
    (the pairs' prompts only: the trainer samples its replies); ``reads_reward_model``: the
    ``reward_model`` option names a ``train rm`` model, checked before loading;
    ``metrics``: its validation numbers worth a line in summaries; ``summary(metrics) -> str``: the
    part of the command's last line after the training loss.
    """

    name: str
    schema: type
    arguments: Callable[[Any], tuple[type, dict]]
    build: Callable[..., Any]
    help: str
    description: str
    head: Literal["lm", "score"] = "lm"
    data: Literal["pairs", "prompts"] = "pairs"
    reads_reward_model: bool = False
    metrics: tuple[str, ...] = ()
    summary: Callable[[dict], str] = no_summary


def require_trl():
    try:
        import trl
    except ImportError:
        raise ZhllamaError("train rm/dpo/ppo/orpo need TRL, which is not installed",
                           "it is a dependency of zhllama: pip install 'trl>=1.0'") from None
    return trl


def validation_set(data: dict):
    """The validation split, or None when it is empty (TRL trainers take None)."""
    return data["validation"] if len(data["validation"]) else None


"""The pipeline's stages, in pipeline order: one :class:`StageSpec` each.

Adding a stage means: a section schema (a dataclass in :mod:`.recipe`, and the ``Recipe`` field
of the same name), a plan function (what the stage reads and what it hands on, see
:class:`~zhllama.pipeline.stages.Planner`), a run function that calls the owning stage's public
Python API, and an entry here.  Recipe checks (names, order, needs), the plan and the CLI's
``--from``/``--only`` choices all read this table.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any, Callable

from ..train.config import TrainConfig
from .recipe import BaseSection, EvalSection, ExportSection, MergeSection, ResizeSection, TokenizerSection
from .runner import StageRun
from .stages import Planner, run_base, run_eval, run_export, run_merge, run_resize, run_tokenizer, run_train


@dataclass(frozen=True)
class StageSpec:
    """One stage of the pipeline.

    ``section``: the schema its recipe section is checked against; ``needs``: what must come
    before it, as (stage, recipe key) pairs where either one supplies the same thing (key ``None``:
    only the stage will do); ``plan(planner, section) -> (inputs, settings)``; ``run(StageRun) ->
    metrics``; ``default_section``: listed in ``stages:`` without a section, it runs with the
    schema's defaults; ``resumable``: an interrupted run continues from its checkpoints.
    """

    section: type
    plan: Callable[[Planner, Any], tuple[dict[str, str], dict[str, Any]]]
    run: Callable[[StageRun], dict]
    needs: tuple[tuple[str, str | None], ...] = ()
    default_section: bool = False
    resumable: bool = False


BASE_MODEL = ("base", "base_model")  # a stage that needs a model: the base stage builds one, or the recipe names one

STAGES: dict[str, StageSpec] = {
    "base": StageSpec(BaseSection, Planner.plan_base, run_base, resumable=True),
    "tokenizer": StageSpec(TokenizerSection, Planner.plan_tokenizer, run_tokenizer, needs=(BASE_MODEL,)),
    "resize": StageSpec(ResizeSection, Planner.plan_resize, run_resize, needs=(("tokenizer", None),),
                        default_section=True),
    "pt": StageSpec(TrainConfig, Planner.plan_pt, partial(run_train, stage="pt"), needs=(BASE_MODEL,), resumable=True),
    "sft": StageSpec(TrainConfig, Planner.plan_sft, partial(run_train, stage="sft"), needs=(BASE_MODEL,),
                     resumable=True),
    "merge": StageSpec(MergeSection, Planner.plan_merge, run_merge, needs=(("sft", None),), default_section=True),
    "eval": StageSpec(EvalSection, Planner.plan_eval, run_eval, needs=(BASE_MODEL,)),
    "export": StageSpec(ExportSection, Planner.plan_export, run_export, needs=(BASE_MODEL,)),
}

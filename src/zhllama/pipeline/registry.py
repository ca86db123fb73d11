"""The pipeline's stages, in pipeline order: one :class:`StageSpec` each.

Adding a stage means: a section schema (a dataclass in :mod:`.recipe`, and the ``Recipe`` field
of the same name, marked ``STAGE``, in pipeline order), a run function that calls the owning stage's public Python API, and an entry
here.  A stage that changes what later stages receive (a new model, a tokenizer) also gives a plan
function (a :class:`~zhllama.pipeline.stages.Planner` method); without one, the stage reads the
model the stages before it produced and its settings are its section.  Recipe checks (names,
order, needs: :mod:`.load`), the plan (:func:`plan`) and the CLI's ``--from``/``--only`` choices all
read this table.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any, Callable

from ..align import TRAINERS
from .align_stages import plan_dpo, plan_policy, plan_ppo, plan_rm, run_dpo, run_policy, run_ppo, run_rm
from .recipe import (ALIGN_SECTIONS, AblationSection, BaseSection, EvalSection, ExportSection, MergeSection,
                     PrepareSection, ReportSection, ResizeSection, ServeSection, SftSection, TokenizerSection,
                     TrainSection)
from .ablation import plan_ablation, run_ablation
from .prepare_stage import plan_data_prepare, run_data_prepare
from .recipe import Recipe
from .report_stage import plan_report, run_report_stage
from .runner import Inputs, Stage, StageRun
from .serve_stage import run_serve_stage
from .stages import Planner, run_base, run_eval, run_export, run_merge, run_resize, run_tokenizer
from .training import run_train


@dataclass(frozen=True)
class StageSpec:
    """One stage of the pipeline.

    ``section``: the schema its recipe section is checked against; ``run(StageRun) -> metrics``;
    ``plan(planner, section) -> (inputs, settings)``, the settings typed (default
    :meth:`Planner.plan_model_reader`: the section itself);
    ``needs``: what must come before it, as (stage, recipe key) pairs where either one supplies the
    same thing (key ``None``: only the stage will do); ``requires``: (module, pip requirement) pairs
    of the third-party packages its run imports lazily, checked before any stage runs, so a broken
    install fails in a second instead of after the earlier stages' minutes; ``default_section``: listed in ``stages:``
    without a section, it runs with the schema's defaults; ``resumable``: an interrupted run
    continues from its checkpoints.
    """

    section: type
    run: Callable[[StageRun], dict]
    plan: Callable[[Planner, Any], tuple[Inputs, Any]] = Planner.plan_model_reader
    needs: tuple[tuple[str, str | None], ...] = ()
    requires: tuple[tuple[str, str], ...] = ()
    default_section: bool = False
    resumable: bool = False


BASE_MODEL = ("base", "base_model")  # a stage that needs a model: the base stage builds one, or the recipe names one
TRL = (("trl", "trl>=1.0"),)  # the preference stages run on TRL's trainers

STAGES: dict[str, StageSpec] = {
    "base": StageSpec(BaseSection, run_base, Planner.plan_base, resumable=True),
    "tokenizer": StageSpec(TokenizerSection, run_tokenizer, Planner.plan_tokenizer, needs=(BASE_MODEL,)),
    "resize": StageSpec(ResizeSection, run_resize, Planner.plan_resize, needs=(("tokenizer", None),),
                        default_section=True),
    "prepare": StageSpec(PrepareSection, run_data_prepare, plan_data_prepare, needs=(BASE_MODEL,), resumable=True),
    "pt": StageSpec(TrainSection, partial(run_train, stage="pt"), Planner.plan_pt, needs=(BASE_MODEL,), resumable=True),
    "ablation": StageSpec(AblationSection, run_ablation, plan_ablation, needs=(("pt", None),)),
    "sft": StageSpec(SftSection, partial(run_train, stage="sft"), Planner.plan_sft, needs=(BASE_MODEL,),
                     resumable=True),
    "merge": StageSpec(MergeSection, run_merge, Planner.plan_merge, needs=(("sft", None),), default_section=True),
    "rm": StageSpec(ALIGN_SECTIONS["rm"], run_rm, plan_rm, needs=(BASE_MODEL,), requires=TRL, resumable=True),
    "dpo": StageSpec(ALIGN_SECTIONS["dpo"], run_dpo, plan_dpo, needs=(BASE_MODEL,), requires=TRL, resumable=True),
    "ppo": StageSpec(ALIGN_SECTIONS["ppo"], run_ppo, plan_ppo, needs=(("rm", None),), requires=TRL, resumable=True),
    "orpo": StageSpec(ALIGN_SECTIONS["orpo"], partial(run_policy, stage="orpo"), partial(plan_policy, stage="orpo"),
                      needs=(BASE_MODEL,), requires=TRL, resumable=True),
    "eval": StageSpec(EvalSection, run_eval, Planner.plan_eval, needs=(BASE_MODEL,)),
    "report": StageSpec(ReportSection, run_report_stage, plan_report, needs=(BASE_MODEL,)),
    "export": StageSpec(ExportSection, run_export, needs=(BASE_MODEL,)),
    "serve": StageSpec(ServeSection, run_serve_stage, needs=(BASE_MODEL,), default_section=True),
}


def plan(recipe: Recipe) -> list[Stage]:
    """The recipe's enabled stages, each planned by its entry in the order they run."""
    planner = Planner(recipe)
    return [plan_stage(planner, name) for name in recipe.enabled()]


def plan_stage(planner: Planner, name: str) -> Stage:
    """The stage ``name`` as planned at this point of the pipeline (its section, or the schema's defaults)."""
    spec = STAGES[name]
    section = getattr(planner.r, name)
    inputs, settings = spec.plan(planner, section if section is not None else spec.section())
    return Stage(name, inputs, settings, spec.run, resumable=spec.resumable)

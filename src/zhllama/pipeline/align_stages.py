"""The preference stages of the pipeline: one per trainer of :data:`zhllama.align.TRAINERS` (rm, dpo, ppo, orpo).

Each section is its trainer's schema (``TRAINERS[name].schema``, e.g. :class:`~zhllama.align.dpo.DpoConfig`) (``train_files`` are
preference files, e.g. ``builtin:task_pairs?split=train&tasks=sentiment``); the pipeline sets the
model, the output folder and, for ppo, the reward model.  Hand-offs checked at plan time: the
stage reads the instruction-tuned model (a merged or full SFT model, which carries the SFT
tokenizer) and uses the recipe's template, the one SFT trained with; at run time the model's and
the reward model's ``zhllama.json`` templates and tokenizers are checked again
(:func:`zhllama.align.run.check_handoff`).

Outputs: ``rm/out/model`` (the reward model); ``dpo/out``, ``ppo/out`` and ``orpo/out`` hold ``model/`` (what
later stages read) and, for LoRA, the ``adapter/`` it was merged from.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ..align import TRAINERS
from ..config import build
from ..errors import ZhllamaError
from ..meta import read_meta
from ..train import merge_adapters
from .runner import StageRun, stage_out
from .training import move_into, resumes, training_metrics

# the trainers whose model later stages read (not the reward model), in pipeline order
TUNED_LABEL = {name: f"preference-tuned ({name.upper()})" for name, t in TRAINERS.items() if t.head == "lm"}


def align_config(planner, section, stage: str):
    """The stage's trainer schema (``TRAINERS[stage].schema``) from its section (template: the recipe's), without paths (inputs)."""
    if planner.model is None:
        raise ZhllamaError(f"{stage}: the sft stage's LoRA adapter is not merged",
                           f"add a merge stage before {stage} (it trains on the instruction-tuned model)")
    check_model_template(planner.model, planner.r.template, stage)
    template = planner.recipe_template(section, stage)
    planner.train_files(section, stage)
    return build(TRAINERS[stage].schema, section, template=template, train_files=[])


def check_model_template(model: str, template: str, stage: str) -> None:
    """A model that exists already (the recipe's base_model) must have been instruction-tuned with ``template``."""
    trained = read_meta(model).template if Path(model).is_dir() else None
    if trained and trained != template:
        raise ZhllamaError(f"{stage}: {model} was instruction-tuned with the '{trained}' template but the recipe's "
                           f"template is '{template}'", f"set template: {trained} in the recipe")


def plan_rm(planner, section):
    settings = align_config(planner, section, "rm")
    inputs = {"model": planner.model, "train_files": planner.train_files(section, "rm")}
    planner.reward_model = str(stage_out(planner.r, "rm") / "model")
    return inputs, settings


def plan_policy(planner, section, stage: str):
    """dpo / ppo / orpo: the model they train becomes the model later stages read."""
    settings = align_config(planner, section, stage)
    inputs = {"model": planner.model, "train_files": planner.train_files(section, stage)}
    if TRAINERS[stage].reads_reward_model:
        inputs["reward_model"] = planner.reward_model
    planner.model = str(stage_out(planner.r, stage) / "model")
    planner.evaluated[TUNED_LABEL[stage]] = planner.model
    return inputs, settings


def plan_dpo(planner, section):
    return plan_policy(planner, section, "dpo")


def plan_ppo(planner, section):
    if planner.reward_model is None:
        raise ZhllamaError("ppo: there is no reward model", "add an rm stage before ppo")
    return plan_policy(planner, section, "ppo")


def align_step(ctx: StageRun, stage: str) -> dict:
    """Train ``stage`` into ``ctx.work/train`` (resuming from its checkpoints when asked)."""
    from ..align import train_align

    out = ctx.work / "train"
    resume = resumes(ctx, out)
    reward = {"reward_model": ctx.inputs["reward_model"]} if TRAINERS[stage].reads_reward_model else {}
    cfg = replace(ctx.settings, model=ctx.inputs["model"], train_files=list(ctx.inputs["train_files"]), output_dir=str(out),
                  resume=resume, overwrite=not resume, **reward)
    return train_align(cfg, stage)


def run_rm(ctx: StageRun) -> dict:
    result = align_step(ctx, "rm")
    move_into(Path(result["model_dir"]), ctx.out / "model")
    return align_metrics(ctx, "rm", result["metrics"])


def run_policy(ctx: StageRun, stage: str) -> dict:
    s = ctx.settings
    result = align_step(ctx, stage)
    final = Path(result["model_dir"])
    if s.full:
        move_into(final, ctx.out / "model")
    else:
        move_into(final, ctx.out / "adapter")
        merge_adapters(ctx.inputs["model"], [str(ctx.out / "adapter")], str(ctx.out / "model"), overwrite=True,
                       template=s.template)
    return align_metrics(ctx, stage, result["metrics"])


def run_dpo(ctx: StageRun) -> dict:
    return run_policy(ctx, "dpo")


def run_ppo(ctx: StageRun) -> dict:
    return run_policy(ctx, "ppo")


def align_metrics(ctx: StageRun, stage: str, metrics: dict) -> dict:
    """The training metrics and the trainer's validation numbers worth a line in the summary."""
    return {**training_metrics(ctx.work / "train"), **{k: metrics[k] for k in TRAINERS[stage].metrics if k in metrics}}

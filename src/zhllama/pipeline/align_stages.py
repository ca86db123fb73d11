"""The preference stages of the pipeline: one per trainer of :data:`zhllama.align.TRAINERS` (rm, dpo, ppo, orpo).

Each section is a mapping of the trainer's schema (``TRAINERS[name].schema``) (``train_files`` are
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

from pathlib import Path

from ..align import TRAINERS
from ..errors import ZhllamaError
from .runner import StageRun, stage_out

ALIGN_RESERVED_KEYS = ("reward_model",)
# the trainers whose model later stages read (not the reward model), in pipeline order
TUNED_LABEL = {name: f"preference-tuned ({name.upper()})" for name, t in TRAINERS.items() if t.head == "lm"}


def align_settings(planner, section: dict, stage: str) -> tuple[dict, list[str]]:
    """The section checked against the trainer's schema (template: the recipe's); ``(settings, files)``."""
    for key in section:
        if key in ALIGN_RESERVED_KEYS:
            raise ZhllamaError(f"{stage}: '{key}' is set by the pipeline", "remove it from the recipe")
    if planner.model is None:
        raise ZhllamaError(f"{stage}: the sft stage's LoRA adapter is not merged",
                           f"add a merge stage before {stage} (it trains on the instruction-tuned model)")
    check_model_template(planner.model, planner.r.template, stage)
    settings, files = planner.train_settings(section, stage, planner.r.template, schema=TRAINERS[stage].schema)
    settings.pop("reward_model", None)  # an input (checksummed), not a setting
    return settings, files


def check_model_template(model: str, template: str, stage: str) -> None:
    """A model that exists already (the recipe's base_model) must have been instruction-tuned with ``template``."""
    from ..meta import read_meta

    trained = read_meta(model).template if Path(model).is_dir() else None
    if trained and trained != template:
        raise ZhllamaError(f"{stage}: {model} was instruction-tuned with the '{trained}' template but the recipe's "
                           f"template is '{template}'", f"set template: {trained} in the recipe")


def plan_rm(planner, section: dict):
    settings, files = align_settings(planner, section, "rm")
    inputs = {"model": planner.model, **planner.files(files, "train_files")}
    planner.reward_model = str(stage_out(planner.r, "rm") / "model")
    return inputs, settings


def plan_policy(planner, section: dict, stage: str):
    """dpo / ppo / orpo: the model they train becomes the model later stages read."""
    settings, files = align_settings(planner, section, stage)
    inputs = {"model": planner.model, **planner.files(files, "train_files")}
    if TRAINERS[stage].reads_reward_model:
        inputs["reward_model"] = planner.reward_model
    planner.model = str(stage_out(planner.r, stage) / "model")
    planner.evaluated[TUNED_LABEL[stage]] = planner.model
    return inputs, settings


def plan_dpo(planner, section: dict):
    return plan_policy(planner, section, "dpo")


def plan_ppo(planner, section: dict):
    if planner.reward_model is None:
        raise ZhllamaError("ppo: there is no reward model", "add an rm stage before ppo")
    return plan_policy(planner, section, "ppo")


def align_step(ctx: StageRun, stage: str) -> dict:
    """Train ``stage`` into ``ctx.work/train`` (resuming from its checkpoints when asked)."""
    from ..align import train_align
    from ..train.checkpoints import last_complete_checkpoint

    out = ctx.work / "train"
    resume = bool(ctx.resume and out.is_dir() and last_complete_checkpoint(out))
    files = [v for k, v in ctx.inputs.items() if k.startswith("train_files")]
    reward = {"reward_model": ctx.inputs["reward_model"]} if TRAINERS[stage].reads_reward_model else {}
    cfg = TRAINERS[stage].schema(**ctx.settings, **reward, model=ctx.inputs["model"], train_files=files,
                                 output_dir=str(out), resume=resume, overwrite=not resume)
    return train_align(cfg, stage)


def run_rm(ctx: StageRun) -> dict:
    from .stages import move_into

    result = align_step(ctx, "rm")
    move_into(Path(result["model_dir"]), ctx.out / "model")
    return align_metrics(ctx, "rm", result["metrics"])


def run_policy(ctx: StageRun, stage: str) -> dict:
    from ..train import merge_adapters
    from .stages import move_into

    result = align_step(ctx, stage)
    final = Path(result["model_dir"])
    if ctx.settings["full"]:
        move_into(final, ctx.out / "model")
    else:
        move_into(final, ctx.out / "adapter")
        merge_adapters(ctx.inputs["model"], [str(ctx.out / "adapter")], str(ctx.out / "model"), overwrite=True,
                       template=ctx.settings["template"])
    return align_metrics(ctx, stage, result["metrics"])


def run_dpo(ctx: StageRun) -> dict:
    return run_policy(ctx, "dpo")


def run_ppo(ctx: StageRun) -> dict:
    return run_policy(ctx, "ppo")


def align_metrics(ctx: StageRun, stage: str, metrics: dict) -> dict:
    """The training metrics and the trainer's validation numbers worth a line in the summary."""
    from .stages import training_metrics

    return {**training_metrics(ctx.work / "train"), **{k: metrics[k] for k in TRAINERS[stage].metrics if k in metrics}}

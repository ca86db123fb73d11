"""The training steps of the pipeline's stages (base, pt, ablation, sft; rm/dpo/ppo reuse the helpers):
a stage's typed ``TrainConfig`` (its settings, planned from its recipe section) completed with the
paths of this run and handed to :func:`zhllama.train.train`."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from pathlib import Path

from .. import train as train_package  # its train() looked up at call time: tests wrap zhllama.train.train
from ..train import merge_adapters
from ..train.checkpoints import last_complete_checkpoint
from ..train.config import TrainConfig
from ..train.report import read_run_outputs
from .runner import StageRun


@dataclass
class TrainPlan:
    """The settings of a pt, ablation or sft stage: its training config without paths (those are
    the stage's inputs), and for ``sft.then`` the second phase's, which starts from the first's model."""

    train: TrainConfig
    then: TrainConfig | None = None


def run_train(ctx: StageRun, stage: str) -> dict:
    """pt or sft; a LoRA run also writes the merged model that the next stage starts from."""
    plan: TrainPlan = ctx.settings
    result = train_step(ctx, stage, plan.train, ctx.inputs["model"], ctx.inputs.get("train_files", []),
                        ctx.inputs.get("tokenizer"), data=ctx.inputs.get("data"))
    if plan.then:  # the second phase starts from the first one's final model (full-parameter only)
        result = train_step(ctx, stage, plan.then, result["model_dir"], ctx.inputs["then_train_files"], None, folder="then")
    final = Path(result["model_dir"])
    if plan.train.full:
        move_into(final, ctx.out / "model")
    else:
        move_into(final, ctx.out / "adapter")
        if stage == "pt":
            merge_adapters(ctx.inputs["model"], [str(ctx.out / "adapter")], str(ctx.out / "model"), overwrite=True)
    metrics = training_metrics(ctx.work / "train")
    if plan.then:
        metrics["then"] = training_metrics(ctx.work / "then")
    return metrics


def resumes(ctx: StageRun, out: Path) -> bool:
    """Whether training into ``out`` continues from its last complete checkpoint (else it starts over)."""
    return bool(ctx.resume and out.is_dir() and last_complete_checkpoint(out))


def train_step(ctx: StageRun, stage: str, cfg: TrainConfig, model: str, files: list[str], tokenizer: str | None,
               folder: str = "train", data: str | None = None) -> dict:
    """Train on ``files``, or on ``data``, a prepared folder (pt after a prepare stage, or ``pt.data``)."""
    out = ctx.work / folder
    resume = resumes(ctx, out)
    prepared = {"data": data} if data else {}
    return train_package.train(replace(cfg, model=model, tokenizer=tokenizer, train_files=list(files), output_dir=str(out),
                                       resume=resume, overwrite=not resume, **prepared), stage)


def move_into(src: Path, dst: Path) -> None:
    """Move a finished folder into place (replacing an older one)."""
    if dst.exists():
        shutil.rmtree(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(src), str(dst))


def training_metrics(train_dir: Path) -> dict:
    """The numbers the summary shows, from the training stage's report."""
    data = read_run_outputs(train_dir)
    if data is None:
        return {}
    m, curve = data.get("metrics", {}), data.get("loss_curve", {})
    keep = ("train_loss", "eval_loss", "train_runtime", "tokens_seen", "train_tokens_per_second")
    return {**{k: m[k] for k in keep if k in m}, "parameters": data.get("parameters"), "loss_curve": curve}

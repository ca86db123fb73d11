"""The ``prepare`` stage: the pt stage's corpus tokenized once into token shards (``zhllama data prepare``).

Its tokenizer is the one the pipeline's model has at this point: the extended tokenizer of a
``tokenizer:`` stage that the model does not carry yet (pt resizes to it), else the current model's
own (after ``resize:``, the resized model's).  The pt stage after it trains on the stage's folder,
as ``train pt --data DIR`` does, with that same tokenizer, so the text is not tokenized again; pt
then gives no ``train_files`` of its own.  The section is ``zhllama data prepare``'s options
(:class:`~zhllama.data.prepare.PrepareConfig`) less the tokenizer, the folder and ``overwrite``,
which the pipeline sets.  An interrupted run resumes in its folder: the finished shards are kept.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..config import build
from ..data.prepare import PrepareConfig
from ..data.shards import check_weights
from ..errors import ZhllamaError
from .recipe import PrepareSection
from .runner import Inputs, StageRun, stage_out

REPORTED = ("documents", "tokens", "chars", "dtype", "skipped_lines", "skipped_files")


@dataclass
class PreparedData:
    """What the plan hands on to pt (and the ablation): the folder, the tokenizer it was made with,
    the text files and the reading options."""

    folder: str
    tokenizer: str
    files: list[str]
    section: PrepareSection


def plan_data_prepare(planner, section: PrepareSection) -> tuple[Inputs, PrepareSection]:
    """Inputs: the tokenizer the pt stage will train with and the corpus files; settings: the section."""
    tokenizer = planner.tokenizer or planner.model
    files = planner.train_files(section, "prepare")
    try:  # one weight per entry, checked before anything runs
        check_weights(section.weights, section.train_files)
    except ZhllamaError as e:
        raise ZhllamaError(f"prepare.weights: {e.message}", e.hint) from None
    planner.prepared = PreparedData(str(stage_out(planner.r, "prepare")), tokenizer, files, section)
    return {"tokenizer": tokenizer, "train_files": files}, replace(section, train_files=[])


def run_data_prepare(ctx: StageRun) -> dict:
    """``zhllama data prepare`` into the stage's folder; its metrics are the index's counts."""
    from ..data.prepare import prepare

    index = prepare(build(PrepareConfig, ctx.settings, tokenizer=ctx.inputs["tokenizer"],
                          train_files=list(ctx.inputs["train_files"]), out=str(ctx.out)), progress=False)
    sources = [{k: s[k] for k in ("name", "weight", "tokens", "documents")} for s in index["sources"]]
    return {**{k: index[k] for k in REPORTED}, "shards": len(index["shards"]), "sources": sources}

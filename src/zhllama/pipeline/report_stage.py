"""The report stage: ``zhllama eval report`` on the run's English base against what the run made of it.

The base is the model the Chinese training started from (the base stage's, or ``base_model``); the
models are the pre-trained one (when a pt stage ran) and the final one, labelled as the eval stage
labels them.  ``report:`` is ``eval report``'s schema (:class:`~zhllama.eval.config.ReportConfig`)
less what the pipeline sets (base, model, out); its files (``zh_text``, ``en_text``, ``mc_data``,
``mmlu_data``, ``longbench``) may be ``builtin:`` sources.  The text files are scored one document
(one line of a ``.txt``) per item, so each bits/char difference has a paired standard error.

Outputs: ``report/out/report.md``, ``report.json``, ``report.png`` and ``texts/`` (the scored texts,
as the recorded command reads them); its metrics are each difference against the base with its
standard error, for the summary.
"""

from __future__ import annotations

import json
from dataclasses import replace

from ..config import build
from ..errors import ZhllamaError
from ..eval.config import ReportConfig
from ..io import read_json, write_text_atomic
from .runner import Inputs, StageRun

BASE_LABEL = "English base"
TEXTS = {"zh_text": "zh", "en_text": "en"}


def plan_report(planner, section) -> tuple[Inputs, object]:
    """Inputs: the English base, the pre-trained and final models (by label) and the section's files."""
    if planner.model is None:
        raise ZhllamaError("report: the sft stage's LoRA adapter is not merged", "add a merge stage before report")
    models = {}
    pretrained = planner.evaluated.get("pre-trained")
    if pretrained and pretrained != planner.model:
        models["pre-trained"] = pretrained
    final = next((label for label, path in reversed(planner.evaluated.items()) if path == planner.model), "final")
    models[final] = planner.model
    if planner.model == planner.base_model:
        raise ZhllamaError("report: no stage before it changed the English base model",
                           "the report compares the base with what pt, sft or dpo made of it: add one of them")
    inputs: Inputs = {"base": planner.base_model, "models": models}
    for key in ("zh_text", "en_text", "mc_data", "mmlu_data"):
        if getattr(section, key):
            inputs[key] = planner.path(getattr(section, key))
    if section.longbench:
        inputs["longbench"] = planner.paths(section.longbench)
    if not any(k in inputs for k in (*TEXTS, "mc_data", "mmlu_data", "longbench")) and not section.passkey_lengths:
        raise ZhllamaError("report: nothing to evaluate",
                           "give zh_text and en_text (e.g. builtin:people_daily?split=valid&max_chars=5000), "
                           "mc_task with mc_data, mmlu_data, passkey_lengths or longbench")
    return inputs, replace(section, zh_text=None, en_text=None, mc_data=None, mmlu_data=None, longbench=[])  # files: inputs


def run_report_stage(ctx: StageRun) -> dict:
    from ..eval.report import report_command, run_report

    models = ctx.inputs["models"]
    files = {key: str(write_items(ctx.inputs[key], ctx.out / "texts" / f"{lang}.jsonl"))
             for key, lang in TEXTS.items() if key in ctx.inputs}
    files.update({k: ctx.inputs[k] for k in ("mc_data", "mmlu_data", "longbench") if k in ctx.inputs})
    cfg = build(ReportConfig, ctx.settings, base=ctx.inputs["base"], model=list(models.values()), out=str(ctx.out),
                **files)
    run_report(cfg, report_command(cfg), labels=[BASE_LABEL, *models])
    return report_metrics(read_json(ctx.out / "report.json", "the report stage's own output"))


def write_items(path: str, out):
    """The file's documents (a .txt: its lines) as JSONL, one scored item each."""
    from ..text import iter_documents

    lines = [json.dumps({"text": doc}, ensure_ascii=False) for doc in iter_documents(path)]
    if not lines:
        raise ZhllamaError(f"report: {path} has no text to score", "give a file with text in it")
    write_text_atomic(out, "\n".join(lines) + "\n")
    return out


def report_metrics(report: dict) -> dict:
    """Each model's difference against the base on every row of the report, with its standard error."""
    from ..eval.report import Metric

    differences: dict[str, dict] = {}
    for row in report["metrics"]:
        metric = Metric(**row)
        for label in list(metric.pooled)[1:]:
            delta, se = metric.difference(BASE_LABEL, label)
            differences.setdefault(label, {})[metric.name] = {
                "unit": metric.unit, "higher_is_better": metric.higher_is_better, "n": len(metric.items[BASE_LABEL]),
                "base": round(metric.pooled[BASE_LABEL], 4), "model": round(metric.pooled[label], 4),
                "difference": round(delta, 4), "se": None if se is None else round(se, 4)}
    return {"base": BASE_LABEL, "differences": differences}

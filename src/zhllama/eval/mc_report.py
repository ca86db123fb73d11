"""Accuracy per subject, per category and overall; the Markdown table; C-Eval's submission file.

Accuracies are percentages.  ``accuracy`` counts questions (CMMLU's official figure: all
questions of a category pooled); ``macro`` averages the subjects' accuracies (C-Eval's official
figure: the mean over subjects).  Both are reported so either leaderboard can be matched.
"""

from __future__ import annotations

from pathlib import Path

from ..io import write_json_atomic, write_text_atomic
from .mc_data import Subject
from .mc_benchmarks import MC_BENCHMARKS


def _pct(num: int, den: int) -> float | None:
    return round(100.0 * num / den, 2) if den else None


def _group(rows: list[dict]) -> dict:
    graded = [r for r in rows if r["accuracy"] is not None]
    questions = sum(r["graded"] for r in graded)
    correct = sum(r["correct"] for r in graded)
    macro = round(sum(r["accuracy"] for r in graded) / len(graded), 2) if graded else None
    return {"subjects": len(rows), "questions": questions, "correct": correct,
            "accuracy": _pct(correct, questions), "macro": macro}


def summarize(task: str, subjects: list[Subject], done: dict) -> dict:
    """Per-subject, per-category and overall accuracy of the predictions in ``done``."""
    per_subject = {}
    for s in subjects:
        recs = [done[(s.key, q.qid)] for q in s.questions if (s.key, q.qid) in done]
        graded = [r for r in recs if r.get("answer")]
        correct = sum(1 for r in graded if r["pred"] == r["answer"])
        per_subject[s.key] = {"name": s.name, "categories": list(s.categories), "questions": len(s.questions),
                              "answered": len(recs), "graded": len(graded), "correct": correct,
                              "no_answer": sum(1 for r in recs if not r["pred"]),
                              "truncated": sum(1 for r in recs if r.get("truncated")),
                              "accuracy": _pct(correct, len(graded))}
    rows = list(per_subject.values())
    cats = {c: _group([r for r in rows if c in r["categories"]]) for c in MC_BENCHMARKS[task].categories}
    return {"overall": _group(rows), "categories": {c: v for c, v in cats.items() if v["subjects"]},
            "subjects": per_subject}


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def results_table(summary: dict) -> str:
    """Markdown: categories and overall first, then every subject."""
    lines = ["| | subjects | questions | accuracy (%) | macro (%) |", "| --- | ---: | ---: | ---: | ---: |"]
    for name, g in summary["categories"].items():
        lines.append(f"| {name} | {g['subjects']} | {g['questions']} | {_fmt(g['accuracy'])} | {_fmt(g['macro'])} |")
    o = summary["overall"]
    lines.append(f"| **Overall** | {o['subjects']} | {o['questions']} | **{_fmt(o['accuracy'])}** | {_fmt(o['macro'])} |")
    lines += ["", "| subject | 科目 | questions | correct | accuracy (%) |", "| --- | --- | ---: | ---: | ---: |"]
    for key, s in summary["subjects"].items():
        lines.append(f"| {key} | {s['name']} | {s['graded']} | {s['correct']} | {_fmt(s['accuracy'])} |")
    return "\n".join(lines) + "\n"


def ceval_submission(subjects: list[Subject], done: dict) -> dict[str, dict[str, str]]:
    """C-Eval's test-set submission format: ``{subject: {question id: letter}}``."""
    return {s.key: {q.qid: done[(s.key, q.qid)]["pred"] or "" for q in s.questions if (s.key, q.qid) in done}
            for s in subjects}


def write_reports(out: Path, task: str, settings: dict, summary: dict, submission: dict | None) -> None:
    write_json_atomic(out / "results.json", {"settings": settings, **summary})
    write_text_atomic(out / "results.md", results_table(summary))
    if submission is not None:
        write_json_atomic(out / "submission.json", submission)

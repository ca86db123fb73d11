"""``zhllama eval compare``: several models answer the same questions, side by side.

Each model answers with its own chat template (``--model`` spec or its ``zhllama.json``) through
the generation engine; the answers go to ``answers.jsonl`` and to a side-by-side ``report.md``
and ``report.html`` for human review.  A pairwise judgement file adds win rates and Elo ratings
(:mod:`zhllama.eval.elo`).

Questions file: ``.txt`` (one question per line), ``.jsonl`` or ``.json`` (array) of objects
with ``question`` (or ``instruction``/``prompt``), optional ``id`` and ``category``.
"""

from __future__ import annotations

import gc
import html
import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import ZhllamaError, require_file
from .config import CompareConfig
from .task import EvalTask

QUESTION_FIELDS = ("question", "instruction", "prompt")


@dataclass
class ModelSpec:
    label: str
    path: str
    lora: str | None = None
    template: str | None = None


def parse_model_spec(spec: str) -> ModelSpec:
    """``DIR`` or ``path=DIR,label=NAME,lora=ADAPTER,template=NAME`` (any order)."""
    if "=" not in spec:
        return ModelSpec(label=Path(spec).name or spec, path=spec)
    fields = {}
    for part in spec.split(","):
        key, sep, value = part.partition("=")
        if not sep or key.strip() not in ("path", "label", "lora", "template"):
            raise ZhllamaError(f"--model '{spec}': cannot read '{part}'",
                               "use DIR or path=DIR,label=NAME,lora=ADAPTER,template=NAME")
        fields[key.strip()] = value.strip()
    if not fields.get("path"):
        raise ZhllamaError(f"--model '{spec}' has no path=", "e.g. path=models/alpaca2,label=alpaca2")
    return ModelSpec(label=fields.get("label") or Path(fields["path"]).name, path=fields["path"],
                     lora=fields.get("lora"), template=fields.get("template"))


def read_questions(path: str | Path) -> list[dict]:
    """``[{"id", "question", "category"}]`` with unique ids (line numbers when none are given)."""
    p = require_file(path, "questions file")
    text = p.read_text(encoding="utf-8")
    if p.suffix == ".txt":
        records = [(n, {"question": line}) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    elif p.suffix == ".jsonl":
        records = [(n, _json(line, f"{p}: line {n}")) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    elif p.suffix == ".json":
        data = _json(text, str(p))
        if not isinstance(data, list):
            raise ZhllamaError(f"{p}: expected a JSON array of questions", 'e.g. [{"id": "1", "question": "..."}]')
        records = list(enumerate(data, 1))
    else:
        raise ZhllamaError(f"{p}: unsupported questions file type '{p.suffix}'", "use .txt, .jsonl or .json")
    questions, seen = [], set()
    for n, rec in records:
        q = _question(rec, n, f"{p}: {'record' if p.suffix == '.json' else 'line'} {n}")
        if q["id"] in seen:
            raise ZhllamaError(f"{p}: duplicate question id '{q['id']}'", "ids must be unique")
        seen.add(q["id"])
        questions.append(q)
    if not questions:
        raise ZhllamaError(f"{p}: no questions", "one question per line (.txt) or per record")
    return questions


def _json(text: str, where: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ZhllamaError(f"{where}: invalid JSON ({e.msg})", "fix the JSON") from None


def _question(rec, n: int, where: str) -> dict:
    if isinstance(rec, str):
        rec = {"question": rec}
    if not isinstance(rec, dict):
        raise ZhllamaError(f"{where}: expected an object or a string", '{"question": "..."}')
    text = next((rec[k] for k in QUESTION_FIELDS if isinstance(rec.get(k), str) and rec[k].strip()), None)
    if text is None:
        raise ZhllamaError(f"{where}: no question text", f"give one of the fields: {', '.join(QUESTION_FIELDS)}")
    return {"id": str(rec.get("id", n)), "question": text, "category": str(rec.get("category", ""))}


def generate_answers(specs: list[ModelSpec], questions: list[dict], params, batch_size: int = 8,
                     device: str = "auto", dtype: str = "auto", progress: bool = True) -> dict[str, list[str]]:
    """label -> answers in question order; one model in memory at a time."""
    from tqdm.auto import tqdm

    from ..infer.engine import Engine

    answers: dict[str, list[str]] = {}
    for spec in specs:
        engine = Engine.load(spec.path, lora=spec.lora, template=spec.template, device=device, dtype=dtype)
        prompts = [engine.chat_prompt([{"role": "user", "content": q["question"]}], params.max_new_tokens)
                   for q in questions]
        out: list[str] = []
        for start in tqdm(range(0, len(prompts), batch_size), desc=spec.label, unit="batch", disable=not progress):
            out += [c.text for c in engine.generate(prompts[start: start + batch_size], params)]
        answers[spec.label] = out
        del engine
        gc.collect()
    return answers


def answer_records(questions: list[dict], answers: dict[str, list[str]]) -> list[dict]:
    return [{**q, "answers": {label: texts[i] for label, texts in answers.items()}} for i, q in enumerate(questions)]


def _md_cell(text: str) -> str:
    return html.escape(text.strip()).replace("|", "\\|").replace("\n", "<br>") or " "


def report_markdown(records: list[dict], labels: list[str], arena_md: str | None = None) -> str:
    lines = ["# Side-by-side answers", ""]
    if arena_md:
        lines += ["## Arena", "", arena_md, ""]
    lines += ["| id | category | question | " + " | ".join(_md_cell(x) for x in labels) + " |",
              "| --- | --- | --- |" + " --- |" * len(labels)]
    for r in records:
        cells = [_md_cell(r["id"]), _md_cell(r["category"]), _md_cell(r["question"])]
        cells += [_md_cell(r["answers"].get(label, "")) for label in labels]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


HTML_STYLE = ("body{font-family:sans-serif;margin:1em}table{border-collapse:collapse;width:100%}"
              "td,th{border:1px solid #ccc;padding:.5em;vertical-align:top;text-align:left}"
              "th{background:#f4f4f4;position:sticky;top:0}.a{white-space:pre-wrap}.q{font-weight:bold}")


def report_html(records: list[dict], labels: list[str], arena_rows: list[dict] | None = None) -> str:
    e = html.escape
    parts = ["<!DOCTYPE html>", '<html lang="zh"><head><meta charset="utf-8"><title>zhllama compare</title>',
             f"<style>{HTML_STYLE}</style></head><body><h1>Side-by-side answers</h1>"]
    if arena_rows:
        parts.append("<h2>Arena</h2><table><tr><th>System</th><th>Win rate (no tie)</th><th>Win rate (with ties)</th>"
                     "<th>Battles (W/L/T)</th><th>Elo</th></tr>")
        for r in arena_rows:
            no_tie = "-" if r["win_rate_no_tie"] is None else f"{100 * r['win_rate_no_tie']:.2f}%"
            parts.append(f"<tr><td>{e(r['model'])}</td><td>{no_tie}</td><td>{100 * r['win_rate']:.2f}%</td>"
                         f"<td>{r['battles']} ({r['wins']}/{r['losses']}/{r['ties']})</td><td>{r['elo']}</td></tr>")
        parts.append("</table>")
    parts.append("<table><tr><th>question</th>" + "".join(f"<th>{e(x)}</th>" for x in labels) + "</tr>")
    for r in records:
        head = f"<div>{e(r['id'])}" + (f" · {e(r['category'])}" if r["category"] else "") + "</div>"
        parts.append(f"<tr><td>{head}<div class=\"q a\">{e(r['question'])}</div></td>"
                     + "".join(f"<td class=\"a\">{e(r['answers'].get(x, ''))}</td>" for x in labels) + "</tr>")
    parts.append("</table></body></html>")
    return "\n".join(parts) + "\n"


def compare_command(cfg) -> int:
    """``zhllama eval compare``: answers, side-by-side report, win rates and Elo for ``cfg`` (a
    :class:`~zhllama.eval.config.CompareConfig`)."""
    from ..io import write_json_atomic, write_text_atomic
    from . import elo

    if not cfg.model and not cfg.judgements:
        raise ZhllamaError("nothing to compare", "give --questions with two or more --model, and/or --judgements")
    if cfg.model and not cfg.questions:
        raise ZhllamaError("--model needs --questions", "give the questions file the models should answer")
    specs = [parse_model_spec(m) for m in cfg.model]
    labels = [s.label for s in specs]
    if len(set(labels)) != len(labels):
        raise ZhllamaError(f"two models have the same label ({', '.join(labels)})", "add label=NAME to the --model specs")
    questions = read_questions(cfg.questions) if cfg.questions else None
    battles = None
    if cfg.judgements:
        battles = elo.read_judgements(cfg.judgements, labels or None,
                                      {q["id"] for q in questions} if questions else None)
    out = Path(cfg.out)
    rows = elo.arena(battles, cfg.elo_k, cfg.elo_init, cfg.elo_rounds, cfg.sampling.seed) if battles else None
    if rows:
        write_json_atomic(out / "arena.json", rows)
        write_text_atomic(out / "arena.md", elo.arena_table(rows))
        print(elo.arena_table(rows), end="")
    if specs:
        answers = generate_answers(specs, questions, cfg.sampling.validate(), cfg.batch_size, cfg.device, cfg.dtype)
        records = answer_records(questions, answers)
        write_text_atomic(out / "answers.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
        write_text_atomic(out / "report.md", report_markdown(records, labels, elo.arena_table(rows) if rows else None))
        write_text_atomic(out / "report.html", report_html(records, labels, rows))
        print(f"wrote {out}/report.md, {out}/report.html and {out}/answers.jsonl")
    return 0


TASK = EvalTask("compare", CompareConfig, compare_command,
                help="side-by-side answers of several models; win rates and Elo",
                description="Generate the answers of several models (each with its own chat template) to the same "
                            "questions into OUT/answers.jsonl, a side-by-side OUT/report.md and OUT/report.html. "
                            "With --judgements (JSONL: id, model_a, model_b, winner a|b|tie) also win rates with and "
                            "without ties and Elo ratings (OUT/arena.md, OUT/arena.json); judgements alone need no "
                            "models.")

"""Reading the folders of the multiple-choice benchmarks (:data:`~zhllama.eval.mc_benchmarks.MC_BENCHMARKS`)
in their public layouts, with one-line errors.

* CMMLU: ``DIR/dev/{subject}.csv`` and ``DIR/test/{subject}.csv``; columns ``(index), Question, A,
  B, C, D, Answer``.
* C-Eval: ``DIR/dev/{subject}_dev.csv``, ``DIR/val/{subject}_val.csv``, ``DIR/test/{subject}_test.csv``;
  columns ``id, question, A, B, C, D, answer, explanation`` (the test split has no answers; the
  explanation is optional).
"""

from __future__ import annotations

import csv
import difflib
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ZhllamaError, require_dir
from .mc_benchmark import McBenchmark
from .mc_benchmarks import MC_BENCHMARKS

LETTERS = ("A", "B", "C", "D")


@dataclass(frozen=True)
class Question:
    qid: str
    question: str
    options: tuple[str, str, str, str]
    answer: str | None  # None where the split has no answers (C-Eval test)


@dataclass
class Subject:
    key: str
    name: str  # Chinese name, used in the prompt
    categories: tuple[str, ...]
    questions: list[Question]
    dev: list[Question] = field(default_factory=list)


def benchmark(task: str) -> McBenchmark:
    """The registry entry of ``task`` (cmmlu, ceval, ...)."""
    if task not in MC_BENCHMARKS:
        raise ZhllamaError(f"unknown task '{task}'", f"use one of: {', '.join(MC_BENCHMARKS)}")
    return MC_BENCHMARKS[task]


def columns(task: str) -> dict[str, str]:
    """Field -> column name in the task's CSV header."""
    return benchmark(task).columns


def split_file(task: str, data_dir: Path, split: str, key: str) -> Path:
    return data_dir / split / benchmark(task).file_name(key, split)


def check_layout(task: str, data_dir: Path, split: str, need_dev: bool) -> None:
    """The folders the task needs must exist and hold CSV files."""
    needed = [split] + (["dev"] if need_dev and split != "dev" else [])
    for part in needed:
        folder = data_dir / part
        if not folder.is_dir() or not any(folder.glob("*.csv")):
            raise ZhllamaError(f"{data_dir}: no {part}/*.csv; expected {benchmark(task).layout}",
                               "point --data-dir at the unpacked benchmark folder, or pick the --task/--split that matches it")


def read_subject_file(task: str, path: Path, split: str) -> list[Question]:
    """The questions of one CSV file, checking columns, answers and ids."""
    cols = columns(task)
    answers_required = benchmark(task).answers_required(split)
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames or []
            wanted = [cols[k] for k in ("id", "question", *LETTERS)] + ([cols["answer"]] if answers_required else [])
            missing = [c for c in wanted if c and c not in header]
            if missing:
                raise ZhllamaError(f"{path}: missing column(s) {', '.join(missing)}",
                                   f"expected header {benchmark(task).header(split)}")
            return _rows_to_questions(reader, cols, path, answers_required, header)
    except UnicodeDecodeError as e:
        raise ZhllamaError(f"{path}: not UTF-8 text (byte {e.start})", "convert the file to UTF-8") from None
    except csv.Error as e:
        raise ZhllamaError(f"{path}: malformed CSV ({e})", "check the quoting of that line") from None


def _rows_to_questions(reader: csv.DictReader, cols: dict, path: Path, answers_required: bool,
                       header: list[str]) -> list[Question]:
    id_col = cols["id"] if cols["id"] in header else None
    questions: list[Question] = []
    seen: set[str] = set()
    for row in reader:
        where = f"{path}: line {reader.line_num}"
        qid = (row.get(id_col) or "").strip() if id_col is not None else ""
        qid = qid or str(len(questions))
        if qid in seen:
            raise ZhllamaError(f"{where}: duplicate question id '{qid}'", "ids must be unique within a subject")
        seen.add(qid)
        answer = (row.get(cols["answer"]) or "").strip()
        if answer and answer not in LETTERS or (answers_required and not answer):
            raise ZhllamaError(f"{where}: answer '{answer}' is not one of A, B, C, D", "fix the Answer column")
        options = tuple((row.get(cols[letter]) or "").strip() for letter in LETTERS)
        text = (row.get(cols["question"]) or "").strip()
        if not text:
            raise ZhllamaError(f"{where}: empty question", "fill in the question text or delete the row")
        questions.append(Question(qid, text, options, answer or None))  # type: ignore[arg-type]
    if not questions:
        raise ZhllamaError(f"{path}: no questions", "the subject file is empty; add questions or remove the file")
    return questions


def list_subjects(task: str, data_dir: Path, split: str) -> list[str]:
    bench, keys = benchmark(task), []
    for path in sorted((data_dir / split).glob("*.csv")):
        key = bench.subject_key(path, split)
        if key not in bench.subjects:
            raise ZhllamaError(f"{path}: unknown {task.upper()} subject '{key}'",
                               f"file names must be {task.upper()} subject keys (e.g. "
                               f"{bench.file_name(next(iter(bench.subjects)), split)})")
        keys.append(key)
    return keys


def select_subjects(task: str, available: list[str], wanted: list[str] | None, data_dir: Path, split: str) -> list[str]:
    if not wanted:
        return available
    for key in wanted:
        if key not in available:
            close = difflib.get_close_matches(key, available, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"subjects present: {', '.join(available[:8])}..."
            raise ZhllamaError(f"subject '{key}' not found in {data_dir / split}", hint)
    return list(dict.fromkeys(wanted))


def load_task(task: str, data_dir: str | Path, split: str, shots: int = 0,
              subjects: list[str] | None = None) -> list[Subject]:
    """Subjects (with their dev examples when ``shots`` > 0) of ``split`` in ``data_dir``."""
    bench = benchmark(task)
    if split not in bench.splits:
        raise ZhllamaError(f"{task} has no split '{split}'", f"use one of: {', '.join(bench.splits)}")
    root = require_dir(data_dir, f"{task} data folder")
    check_layout(task, root, split, need_dev=shots > 0)
    keys = select_subjects(task, list_subjects(task, root, split), subjects, root, split)
    out = []
    for key in keys:
        name, cats = bench.subjects[key]
        questions = read_subject_file(task, split_file(task, root, split, key), split)
        dev: list[Question] = []
        if shots > 0:
            dev_path = split_file(task, root, "dev", key)
            if not dev_path.is_file():
                raise ZhllamaError(f"{dev_path} not found: {shots}-shot prompts need the subject's dev split",
                                   "add the dev file or use --shots 0")
            dev = read_subject_file(task, dev_path, "dev")
        out.append(Subject(key, name, cats, questions, dev))
    return out

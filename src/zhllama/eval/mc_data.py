"""Reading CMMLU and C-Eval data folders in their public layouts, with one-line errors.

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
from .subjects import subject_info

LETTERS = ("A", "B", "C", "D")
TASKS = ("cmmlu", "ceval")
SPLITS = {"cmmlu": ("test", "dev"), "ceval": ("val", "test", "dev")}
LAYOUT = {
    "cmmlu": "DIR/dev/*.csv and DIR/test/*.csv (CMMLU layout)",
    "ceval": "DIR/dev/*_dev.csv, DIR/val/*_val.csv and DIR/test/*_test.csv (C-Eval layout)",
}


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


def columns(task: str) -> dict[str, str]:
    """Field -> column name in the task's CSV header."""
    if task == "cmmlu":
        return {"question": "Question", "A": "A", "B": "B", "C": "C", "D": "D", "answer": "Answer", "id": ""}
    return {"question": "question", "A": "A", "B": "B", "C": "C", "D": "D", "answer": "answer", "id": "id"}


def split_file(task: str, data_dir: Path, split: str, key: str) -> Path:
    name = f"{key}.csv" if task == "cmmlu" else f"{key}_{split}.csv"
    return data_dir / split / name


def subject_key(task: str, path: Path, split: str) -> str:
    stem = path.stem
    if task == "ceval":
        suffix = f"_{split}"
        if not stem.endswith(suffix):
            raise ZhllamaError(f"{path}: C-Eval file names end in '{suffix}.csv'", f"e.g. computer_network{suffix}.csv")
        stem = stem[: -len(suffix)]
    return stem


def check_layout(task: str, data_dir: Path, split: str, need_dev: bool) -> None:
    """The folders the task needs must exist and hold CSV files."""
    needed = [split] + (["dev"] if need_dev and split != "dev" else [])
    for part in needed:
        folder = data_dir / part
        if not folder.is_dir() or not any(folder.glob("*.csv")):
            raise ZhllamaError(f"{data_dir}: no {part}/*.csv; expected {LAYOUT[task]}",
                               "point --data-dir at the unpacked benchmark folder, or pick the --task/--split that matches it")


def read_questions(task: str, path: Path, split: str) -> list[Question]:
    """The questions of one CSV file, checking columns, answers and ids."""
    cols = columns(task)
    answers_required = not (task == "ceval" and split == "test")
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames or []
            wanted = [cols[k] for k in ("id", "question", *LETTERS)] + ([cols["answer"]] if answers_required else [])
            missing = [c for c in wanted if c and c not in header]
            if missing:
                raise ZhllamaError(f"{path}: missing column(s) {', '.join(missing)}",
                                   f"expected header {expected_header(task, split)}")
            return _rows_to_questions(reader, cols, path, answers_required, header)
    except UnicodeDecodeError as e:
        raise ZhllamaError(f"{path}: not UTF-8 text (byte {e.start})", "convert the file to UTF-8") from None
    except csv.Error as e:
        raise ZhllamaError(f"{path}: malformed CSV ({e})", "check the quoting of that line") from None


def expected_header(task: str, split: str) -> str:
    if task == "cmmlu":
        return ",Question,A,B,C,D,Answer"
    return "id,question,A,B,C,D" + ("" if split == "test" else ",answer") + ",explanation"


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
    keys = []
    for path in sorted((data_dir / split).glob("*.csv")):
        key = subject_key(task, path, split)
        if subject_info(task, key) is None:
            raise ZhllamaError(f"{path}: unknown {task.upper()} subject '{key}'",
                               f"file names must be {task.upper()} subject keys (e.g. "
                               f"{'agronomy.csv' if task == 'cmmlu' else 'computer_network_val.csv'})")
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
    if task not in TASKS:
        raise ZhllamaError(f"unknown task '{task}'", f"use one of: {', '.join(TASKS)}")
    if split not in SPLITS[task]:
        raise ZhllamaError(f"{task} has no split '{split}'", f"use one of: {', '.join(SPLITS[task])}")
    root = require_dir(data_dir, f"{task} data folder")
    check_layout(task, root, split, need_dev=shots > 0)
    keys = select_subjects(task, list_subjects(task, root, split), subjects, root, split)
    out = []
    for key in keys:
        name, cats = subject_info(task, key)  # type: ignore[misc]
        questions = read_questions(task, split_file(task, root, split, key), split)
        dev: list[Question] = []
        if shots > 0:
            dev_path = split_file(task, root, "dev", key)
            if not dev_path.is_file():
                raise ZhllamaError(f"{dev_path} not found: {shots}-shot prompts need the subject's dev split",
                                   "add the dev file or use --shots 0")
            dev = read_questions(task, dev_path, "dev")
        out.append(Subject(key, name, cats, questions, dev))
    return out

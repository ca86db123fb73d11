"""English multiple choice in MMLU's CSV layout, scored as Hendrycks et al.'s ``evaluate.py`` scores it.

Layout: ``DIR/test/{subject}_test.csv`` (and ``DIR/dev/{subject}_dev.csv`` for few-shot), no header,
columns question, A, B, C, D, answer.  Prompt: "The following are multiple choice questions (with
answers) about {subject}.\\n\\n", the dev examples, the question with its options and "Answer:"; the
prediction is the letter whose token has the highest next-token logit.
"""

from __future__ import annotations

import csv
from pathlib import Path

from ..errors import ZhllamaError, require_dir
from ..templates import encode_plain_text

LETTERS = ("A", "B", "C", "D")


def read_csv(path: Path) -> list[tuple[str, tuple[str, ...], str]]:
    rows = []
    with path.open(encoding="utf-8", newline="") as f:
        for n, row in enumerate(csv.reader(f), 1):
            if len(row) != 6 or row[5].strip() not in LETTERS:
                raise ZhllamaError(f"{path}:{n}: an MMLU row is question,A,B,C,D,answer (answer A-D, no header)",
                                   "give a folder in MMLU's layout: test/{subject}_test.csv")
            rows.append((row[0], tuple(row[1:5]), row[5].strip()))
    return rows


def subjects(data_dir: str | Path) -> list[str]:
    root = require_dir(data_dir, "MMLU folder")
    found = sorted(p.name.removesuffix("_test.csv") for p in (root / "test").glob("*_test.csv"))
    if not found:
        raise ZhllamaError(f"{root}: no test/*_test.csv", "give a folder in MMLU's layout: test/{subject}_test.csv")
    return found


def format_example(question: str, options: tuple[str, ...], answer: str | None) -> str:
    text = question + "".join(f"\n{letter}. {option}" for letter, option in zip(LETTERS, options)) + "\nAnswer:"
    return text + (f" {answer}\n\n" if answer else "")


def prompt_text(subject: str, dev: list, question: str, options: tuple[str, ...]) -> str:
    head = f"The following are multiple choice questions (with answers) about {subject.replace('_', ' ')}.\n\n"
    return head + "".join(format_example(q, o, a) for q, o, a in dev) + format_example(question, options, None)


def letter_ids(tokenizer) -> list[int]:
    """The token each answer letter is after "Answer:" (``" A"``: one token in LLaMA's vocabularies)."""
    base = encode_plain_text(tokenizer, "Answer:")
    return [encode_plain_text(tokenizer, f"Answer: {letter}")[len(base):][-1] for letter in LETTERS]


def evaluate(model, tokenizer, data_dir: str | Path, shots: int = 0, limit: int | None = None,
             batch_size: int = 8) -> list[dict]:
    """One record per question (subject, pred, answer, correct); ``limit`` questions per subject at most."""
    from .choice import next_token_logits

    root = Path(data_dir)
    ids = letter_ids(tokenizer)
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    items = []
    for subject in subjects(root):
        dev_file = root / "dev" / f"{subject}_dev.csv"
        dev = read_csv(dev_file)[:shots] if shots and dev_file.is_file() else []
        for question, options, answer in read_csv(root / "test" / f"{subject}_test.csv")[:limit]:
            items.append((subject, bos + encode_plain_text(tokenizer, prompt_text(subject, dev, question, options)),
                          answer))
    records = []
    for start in range(0, len(items), batch_size):
        batch = items[start:start + batch_size]
        for (subject, _, answer), row in zip(batch, next_token_logits(model, [b[1] for b in batch], pad)):
            pred = LETTERS[max(range(4), key=lambda k: float(row[ids[k]]))]
            records.append({"subject": subject, "pred": pred, "answer": answer, "correct": pred == answer})
    return records

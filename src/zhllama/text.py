"""Reading documents from the corpus formats users have.

* ``.txt``: one document per line (blank lines skipped);
* ``.jsonl``: one JSON object per line with a text field (default ``text``);
* ``.json``: a JSON array of Alpaca records (instruction/input/output) or of objects with the
  text field; Alpaca records give their instruction, input and output text;
* any of these gzipped (``.gz``).

Malformed lines are reported with file and line number; ``skip_bad=True`` skips them instead and
counts them in :attr:`ReadStats.skipped`.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from .errors import ZhllamaError, require_file

ALPACA_FIELDS = ("instruction", "input", "output")


@dataclass
class ReadStats:
    documents: int = 0
    skipped: int = 0


def open_text(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
    return path.open(encoding="utf-8")


def base_suffix(path: Path) -> str:
    """``.jsonl`` for ``x.jsonl.gz``."""
    return Path(path.stem).suffix if path.suffix == ".gz" else path.suffix


def record_texts(obj: dict, text_field: str, where: str) -> list[str]:
    """The text(s) of one JSON record: its text field, or an Alpaca record's fields."""
    if not isinstance(obj, dict):
        raise ZhllamaError(f"{where}: expected a JSON object, got {type(obj).__name__}", "one object per record")
    if text_field in obj:
        value = obj[text_field]
        if not isinstance(value, str):
            raise ZhllamaError(f"{where}: field '{text_field}' is not text", "make it a string")
        return [value]
    if "instruction" in obj or "output" in obj:
        return [str(obj[k]) for k in ALPACA_FIELDS if obj.get(k)]
    raise ZhllamaError(f"{where}: no '{text_field}' field", f"add it, or pass the right field name (found: {', '.join(list(obj)[:5])})")


@contextlib.contextmanager
def reading_errors(path: Path) -> Iterator[None]:
    """Turn decoding and I/O failures while reading ``path`` into one-line errors."""
    try:
        yield
    except UnicodeDecodeError as e:
        raise ZhllamaError(f"{path}: not UTF-8 text (byte {e.start})", "convert the file to UTF-8") from None
    except FileNotFoundError:
        raise
    except (OSError, EOFError) as e:
        raise ZhllamaError(f"{path}: cannot read ({e})", "check that the file is not truncated or corrupt") from None


def iter_records(path: Path, what: str = "data") -> Iterator[tuple[str, object]]:
    """``(where, parsed record or JSONDecodeError)`` for each record of a .json/.jsonl(.gz) file.

    ``where`` names the file and line (.jsonl) or record index (.json).  A bad .jsonl line is
    yielded as its ``JSONDecodeError`` so the caller may skip it; a .json file that does not parse
    raises, since its records cannot be told apart.
    """
    kind = base_suffix(path)
    if kind not in (".json", ".jsonl"):
        raise ZhllamaError(f"{path}: unsupported {what} format '{kind or path.name}'",
                           "give .json (an array of records) or .jsonl (one record per line), optionally .gz")
    with reading_errors(path), open_text(path) as f:
        if kind == ".json":
            try:
                data = json.load(f)
            except json.JSONDecodeError as e:
                raise ZhllamaError(f"{path}: line {e.lineno}: invalid JSON ({e.msg})",
                                   "fix the file, or convert it to JSONL to skip bad lines") from None
            for i, obj in enumerate(data if isinstance(data, list) else [data]):
                yield f"{path}: record {i}", obj
        else:
            for lineno, line in enumerate(f, 1):
                if line.strip():
                    try:
                        yield f"{path}: line {lineno}", json.loads(line)
                    except json.JSONDecodeError as e:
                        yield f"{path}: line {lineno}", e


def iter_documents(path: str | Path, text_field: str = "text", skip_bad: bool = False,
                   stats: ReadStats | None = None) -> Iterator[str]:
    """Yield the documents of one corpus file (see module docstring for formats)."""
    p = require_file(path, "corpus file")
    stats = stats if stats is not None else ReadStats()
    if base_suffix(p) in (".json", ".jsonl"):
        for where, obj in iter_records(p, "corpus"):
            try:
                if isinstance(obj, json.JSONDecodeError):
                    raise ZhllamaError(f"{where}: invalid JSON ({obj.msg})", "fix the line or pass --skip-bad")
                texts = record_texts(obj, text_field, where)
            except ZhllamaError:
                if skip_bad:
                    stats.skipped += 1
                    continue
                raise
            for text in texts:
                if text.strip():
                    stats.documents += 1
                    yield text
        return
    with reading_errors(p), open_text(p) as f:
        for line in f:
            line = line.rstrip("\n")
            if line.strip():
                stats.documents += 1
                yield line

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
import re
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
            for i, obj in enumerate(iter_json_array(f, path)):
                yield f"{path}: record {i}", obj
        else:
            for lineno, line in enumerate(f, 1):
                if line.strip():
                    try:
                        yield f"{path}: line {lineno}", json.loads(line)
                    except json.JSONDecodeError as e:
                        yield f"{path}: line {lineno}", e


JSON_CHUNK = 1 << 16  # characters read at a time by iter_json_array
_JSON_SPACE = re.compile(r"[ \t\n\r]*")
_LOOKAHEAD = 16  # a decode error this close to the end of what was read may be a record cut by the chunk


class _ArrayReader:
    """The text of a JSON file, read ``JSON_CHUNK`` characters at a time, with the line of each position."""

    def __init__(self, f, path: Path):
        self.f, self.path = f, path
        self.buf, self.pos, self.line, self.eof = "", 0, 1, False

    def more(self) -> bool:
        """Append a chunk, dropping what was consumed (positions move); False at the end of the file."""
        chunk = "" if self.eof else self.f.read(JSON_CHUNK)
        if not chunk:
            self.eof = True
            return False
        self.buf = self.buf[self.pos:] + chunk
        self.pos = 0
        return True

    def advance(self, end: int) -> None:
        self.line += self.buf.count("\n", self.pos, end)
        self.pos = end

    def next_char(self) -> str:
        """The next character that is not whitespace (not consumed; "" at the end of the file)."""
        while True:
            self.advance(_JSON_SPACE.match(self.buf, self.pos).end())
            if self.pos < len(self.buf) or not self.more():
                return self.buf[self.pos:self.pos + 1]

    def error(self, record: int | None, message: str, at: int | None = None) -> ZhllamaError:
        """An invalid-JSON error naming the record (None: after the array) and the line of ``at`` (default: here)."""
        line = self.line + (self.buf.count("\n", self.pos, at) if at is not None else 0)
        what = f"record {record}" if record is not None else "after the array"
        return ZhllamaError(f"{self.path}: {what} (line {line}): invalid JSON ({message})",
                            "fix the file, or convert it to JSONL (one record per line) to skip bad records")


def iter_json_array(f, path: Path) -> Iterator[object]:
    """The records of a ``.json`` file holding one array, parsed one at a time (any other JSON value is one record).

    ``json.load`` would hold the whole file and every record at once (a 1M-record instruction set
    takes gigabytes); this reads the text in chunks and decodes each record with the standard
    library's ``json.JSONDecoder.raw_decode``, so memory holds one chunk and one record.  ``ijson``
    does this too, but would be a compiled dependency for one loop.  A record cut by the end of a
    chunk is decoded again once the next chunk is read; a record that does not parse is an error
    naming its index and line (an array cannot be resynchronised after a syntax error, so bad
    records are not skipped; JSONL files can skip them).
    """
    decoder = json.JSONDecoder()
    r = _ArrayReader(f, path)
    first = r.next_char()
    if first != "[":  # a single JSON value: one record
        while r.more():
            pass
        try:
            yield json.loads(r.buf)
        except json.JSONDecodeError as e:
            raise ZhllamaError(f"{path}: line {e.lineno}: invalid JSON ({e.msg})",
                               "fix the file, or convert it to JSONL (one record per line) to skip bad records") from None
        return
    r.advance(r.pos + 1)
    index = 0
    if r.next_char() == "]":
        r.advance(r.pos + 1)
    else:
        while True:
            yield _decode_record(decoder, r, index)
            index += 1
            sep = r.next_char()
            if sep == "]":
                r.advance(r.pos + 1)
                break
            if sep != ",":
                raise r.error(index - 1, "expected ',' or ']' after the record" if sep else "the array is not closed")
            r.advance(r.pos + 1)
            r.next_char()
    if r.next_char():
        raise r.error(None, "extra data")


def _decode_record(decoder: json.JSONDecoder, r: _ArrayReader, index: int) -> object:
    """Decode the record at the reader's position, reading more text while it may be cut by the chunk's end."""
    while True:
        try:
            obj, end = decoder.raw_decode(r.buf, r.pos)
        except json.JSONDecodeError as e:
            cut = e.pos >= len(r.buf) - _LOOKAHEAD or e.msg.startswith("Unterminated string")
            if cut and r.more():
                continue
            raise r.error(index, e.msg, e.pos) from None
        if end <= len(r.buf) - _LOOKAHEAD or not r.more():  # a number near the end may go on in the next chunk
            r.advance(end)
            return obj


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

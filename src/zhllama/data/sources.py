"""Pre-training inputs: sources, the shard plan, and the documents of one shard.

A *source* is one ``--train-files`` entry: a file, a glob (``data/news/*.txt``) or a folder (every
corpus file under it, sorted). Its files are cut into *shards*, the unit of parallel work and of
resuming: an uncompressed ``.txt``/``.jsonl`` file larger than ``shard_bytes`` is split at line
starts into byte ranges; any other file (``.gz``, ``.json``, ``.parquet``) is one shard. The plan
depends only on the files and ``shard_bytes``, never on the number of processes, so the shards come
out the same however many processes write them.

Each shard's documents are read in file order, exactly as :func:`zhllama.text.iter_documents`
reads them (one per non-blank ``.txt`` line, a text field per ``.jsonl`` record, Alpaca records in
``.json``), plus Parquet (a text column, through pyarrow). A bad line (not UTF-8, a NUL byte, bad
JSON, no text field) is an error naming the file and line, or with ``skip_bad`` skipped and counted.
"""

from __future__ import annotations

import glob
import gzip
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from ..errors import ZhllamaError
from ..text import ReadStats, base_suffix, iter_documents, record_texts

CORPUS_SUFFIXES = (".txt", ".jsonl", ".json", ".parquet")
SPLITTABLE = (".txt", ".jsonl")  # uncompressed line formats: cut into byte ranges at line starts


@dataclass(frozen=True)
class Shard:
    """One unit of work: ``path`` bytes ``[start, end)`` (``end == -1``: the whole file)."""

    number: int
    source: int
    path: str
    start: int = 0
    end: int = -1

    @property
    def name(self) -> str:
        return f"{self.number:05d}"


def is_corpus_file(path: Path) -> bool:
    kind = base_suffix(path)
    return kind in CORPUS_SUFFIXES and not (kind == ".parquet" and path.suffix == ".gz")


def expand_source(entry: str) -> list[str]:
    """The files of one ``--train-files`` entry, in sorted order for a glob or folder."""
    p = Path(entry)
    if glob.has_magic(entry):
        files = sorted(f for f in glob.glob(entry, recursive=True) if Path(f).is_file())
        if not files:
            raise ZhllamaError(f"no training data file matches {entry}", "check the pattern in train_files")
        return files
    if p.is_dir():
        files = sorted(str(f) for f in p.rglob("*") if f.is_file() and is_corpus_file(f))
        if not files:
            raise ZhllamaError(f"{entry}: the folder holds no corpus file",
                               f"put {', '.join(CORPUS_SUFFIXES)} files (optionally .gz) in it")
        return files
    if not p.is_file():
        raise ZhllamaError(f"training data file not found: {entry}", "check the path in train_files")
    return [entry]


def plan_shards(sources: list[list[str]], shard_bytes: int) -> list[Shard]:
    """Shards for every file of every source, in order (source, file, byte range)."""
    shards: list[Shard] = []
    for s, files in enumerate(sources):
        for path in files:
            for start, end in byte_ranges(Path(path), shard_bytes):
                shards.append(Shard(len(shards), s, path, start, end))
    return shards


def byte_ranges(path: Path, shard_bytes: int) -> list[tuple[int, int]]:
    """``[start, end)`` ranges of about ``shard_bytes`` that begin at line starts (whole file: ``(0, -1)``)."""
    size = path.stat().st_size
    if path.suffix not in SPLITTABLE or size <= shard_bytes:
        return [(0, -1)]
    cuts = [0]
    with path.open("rb") as f:
        while cuts[-1] + shard_bytes < size:
            f.seek(cuts[-1] + shard_bytes)
            f.readline()  # to the start of the next line
            if f.tell() >= size:
                break
            cuts.append(f.tell())
    return list(zip(cuts, cuts[1:] + [size]))


# ---------------------------------------------------------------- reading one shard

def shard_documents(shard: Shard, text_field: str, skip_bad: bool, stats: ReadStats) -> Iterator[str]:
    """The documents of ``shard`` in file order."""
    p = Path(shard.path)
    kind = base_suffix(p)
    if kind == ".parquet":
        yield from parquet_documents(p, text_field, skip_bad, stats)
    elif kind == ".json":  # one JSON array: records cannot be read line by line
        yield from iter_documents(p, text_field=text_field, skip_bad=skip_bad, stats=stats)
    elif kind in SPLITTABLE:
        for lineno, raw in _numbered_lines(shard):
            try:
                texts = _line_texts(raw, kind, text_field, lambda: f"{p}: line {lineno()}")
            except ZhllamaError:
                if not skip_bad:
                    raise
                stats.skipped += 1
                continue
            for text in texts:
                stats.documents += 1
                yield text
    else:
        raise ZhllamaError(f"{p}: unsupported corpus format '{kind or p.name}'",
                           "give .txt, .jsonl, .json or .parquet files (.txt/.jsonl/.json may be .gz)")


def _numbered_lines(shard: Shard) -> Iterator[tuple]:
    """``(line number function, raw line)`` for the lines of the shard's byte range.

    The line number is computed only when an error needs it (counting the newlines before the
    range costs a pass over the file), so reading a range costs nothing extra.
    """
    p = Path(shard.path)
    opener = gzip.open if p.suffix == ".gz" else open
    try:
        with opener(p, "rb") as f:
            if shard.start:
                f.seek(shard.start)
            pos, local = shard.start, 0
            for raw in f:
                local += 1
                yield (lambda n=local: _lines_before(p, shard.start) + n), raw
                pos += len(raw)
                if shard.end != -1 and pos >= shard.end:
                    break
    except (OSError, EOFError) as e:
        raise ZhllamaError(f"{p}: cannot read ({e})", "check that the file is not truncated or corrupt") from None


def _lines_before(path: Path, offset: int) -> int:
    n = 0
    with path.open("rb") as f:
        while offset > 0:
            chunk = f.read(min(offset, 1 << 24))
            if not chunk:
                break
            n += chunk.count(b"\n")
            offset -= len(chunk)
    return n


def _line_texts(raw: bytes, kind: str, text_field: str, where) -> list[str]:
    """The documents of one line: the line itself (``.txt``) or its record's text (``.jsonl``)."""
    if b"\0" in raw:
        raise ZhllamaError(f"{where()}: binary data (a NUL byte)", "give UTF-8 text files, or pass --skip-bad")
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ZhllamaError(f"{where()}: not UTF-8 text (byte {e.start} of the line)",
                           "convert the file to UTF-8 (zhllama.checks names the encoding), or pass --skip-bad") from None
    if kind == ".txt":
        line = line.rstrip("\n").rstrip("\r")  # as text mode reads it: "\r\n" ends a line too
        return [line] if line.strip() else []
    if not line.strip():
        return []
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        raise ZhllamaError(f"{where()}: invalid JSON ({e.msg})", "fix the line or pass --skip-bad") from None
    return [t for t in record_texts(obj, text_field, where()) if t.strip()]


def parquet_documents(path: Path, text_field: str, skip_bad: bool, stats: ReadStats) -> Iterator[str]:
    """The ``text_field`` column of a Parquet file, read one record batch at a time (pyarrow)."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ZhllamaError(f"{path}: reading Parquet needs pyarrow", "pip install pyarrow") from None
    try:
        pf = pq.ParquetFile(path)
    except Exception as e:  # pyarrow raises its own ArrowInvalid for a file that is not Parquet
        raise ZhllamaError(f"{path}: not a Parquet file ({e})", "check the file") from None
    if text_field not in pf.schema_arrow.names:
        raise ZhllamaError(f"{path}: no '{text_field}' column (found: {', '.join(pf.schema_arrow.names[:5])})",
                           "pass the right --text-field")
    row = 0
    for batch in pf.iter_batches(columns=[text_field], batch_size=4096):
        for value in batch.column(0).to_pylist():
            row += 1
            if not isinstance(value, str):
                if not skip_bad:
                    raise ZhllamaError(f"{path}: row {row}: '{text_field}' is not text", "fix it or pass --skip-bad")
                stats.skipped += 1
            elif value.strip():
                stats.documents += 1
                yield value

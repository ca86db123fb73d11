"""Fingerprinted data caches (pre-training shards, instruction and preference datasets).

Pre-training text goes through the token shards of :mod:`zhllama.data.shards` (the same code as
``zhllama data prepare``) and is read as blocks by :mod:`zhllama.data.blocks`;
:func:`build_pt_dataset` ties them to a cache folder named by a fingerprint of the file contents,
the tokenizer and the options, so preparing the same data again only opens it.  Instruction and
preference datasets are saved with ``datasets`` through :func:`cached_build`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Callable

from ..errors import ZhllamaError, require_file
from ..io import atomic_dir, write_json_atomic
from .shards import tokenizer_pipeline

log = logging.getLogger(__name__)

CACHE_FORMAT = 1  # bump when the on-disk layout or the tokenization rules change
REPORT_FILE = "zhllama_report.json"


# ---------------------------------------------------------------- fingerprinted cache (pt and sft)

def file_digest(path: str | Path) -> str:
    """sha256 of a file's bytes (the cache follows content, not names or timestamps)."""
    h = hashlib.sha256()
    with require_file(path, "data file").open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def tokenizer_digest(tokenizer) -> str:
    """A fingerprint of what the tokenizer does: its full pipeline plus its special ids."""
    specials = [tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id, len(tokenizer)]
    return hashlib.sha256((tokenizer_pipeline(tokenizer) + json.dumps(specials)).encode()).hexdigest()


def fingerprint(kind: str, files: list[str], tokenizer, **options) -> str:
    key = {"kind": kind, "format": CACHE_FORMAT, "files": [file_digest(f) for f in files],
           "tokenizer": tokenizer_digest(tokenizer), "options": options}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]


def default_cache_dir() -> Path:
    import datasets

    return Path(datasets.config.HF_DATASETS_CACHE) / "zhllama"


def cached_build(kind: str, key: str, cache_dir: str | None, build: Callable[[Path], tuple]) -> tuple:
    """Load ``(DatasetDict, report)`` from ``cache_dir/<kind>-<key>`` or build and save it there.

    ``build(work_dir)`` returns ``(DatasetDict, report)``; intermediate Arrow files go to
    ``work_dir``, which is deleted afterwards.  The folder is written atomically, so an
    interrupted build is never mistaken for a finished one.
    """
    from datasets import load_from_disk

    root = Path(cache_dir) if cache_dir else default_cache_dir()
    out = root / f"{kind}-{key}"
    if (out / REPORT_FILE).is_file():
        report = json.loads((out / REPORT_FILE).read_text(encoding="utf-8"))
        log.info("loaded cached %s data from %s", kind, out)
        return load_from_disk(str(out)), {**report, "cache": str(out), "cached": True}
    root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=root, prefix=f".{kind}-work-"))
    try:
        dsd, report = build(work)
        with atomic_dir(out, overwrite=True) as tmp:
            # an empty split must be written as one (empty) shard, or it does not load back
            dsd.save_to_disk(str(tmp), num_shards={k: 1 for k, v in dsd.items() if len(v) == 0})
            write_json_atomic(tmp / REPORT_FILE, report)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return load_from_disk(str(out)), {**report, "cache": str(out), "cached": False}


# ---------------------------------------------------------------- pre-training corpora

def build_pt_dataset(files: list[str], tokenizer, block_size: int, validation_split: float = 0.01,
                     cache_dir: str | None = None, num_proc: int = 1, text_field: str = "text",
                     skip_bad: bool = False, seed: int = 0, progress: bool = False):
    """Packed pre-training blocks from corpus files -> ``({"train", "validation"}, report)``.

    The files are prepared into token shards (:func:`zhllama.data.shards.prepare_shards`, the code
    behind ``zhllama data prepare``) under ``cache_dir/pt-shards-<fingerprint>``, a fingerprint
    of the files' bytes, the tokenizer and the reading options, then read as ``block_size``
    blocks (:func:`zhllama.data.blocks.open_blocks`): every document is ``[BOS] + text + [EOS]``,
    documents are concatenated and cut into blocks, validation holds whole documents (about
    ``validation_split`` of the tokens, at least one block; none when the corpus is shorter than
    two blocks). Block size, validation split and seed are read-time choices: changing them
    reuses the shards.

    The report has: documents, validation_documents, tokens (BOS/EOS included), chars, blocks,
    train_blocks, validation_blocks, dropped_tail_tokens, skipped_lines, cache, cached.
    """
    from .blocks import open_blocks
    from .shards import Settings, prepare_shards

    files = [str(f) for f in files]
    if not files:
        raise ZhllamaError("no pre-training files given", "pass one or more .txt/.jsonl/.json/.parquet (.gz) files")
    if block_size < 2:
        raise ZhllamaError(f"block_size must be at least 2, got {block_size}", "use e.g. 512 or 1024")
    if not 0 <= validation_split < 1:
        raise ZhllamaError(f"validation_split must be in [0, 1), got {validation_split}", "use e.g. 0.01")
    settings = Settings(text_field=text_field, skip_bad=skip_bad)
    out = (Path(cache_dir) if cache_dir else default_cache_dir()) / f"pt-shards-{pt_cache_key(files, tokenizer, settings)}"
    index = prepare_shards(files, tokenizer, out, settings=settings, num_proc=num_proc, progress=progress)
    data, report = open_blocks(out, tokenizer, block_size, validation_split, seed)
    return data, {"files": files, **report, "cache": str(out), "cached": index["cached"]}


def pt_cache_key(files: list[str], tokenizer, settings) -> str:
    """The cache folder's name: the files' bytes (not names or times), the tokenizer and the options."""
    from dataclasses import asdict

    from .shards import FORMAT, expand_source

    digests = [[file_digest(f) for f in expand_source(e)] for e in files]
    key = {"format": FORMAT, "files": digests, "tokenizer": tokenizer_digest(tokenizer), "settings": asdict(settings)}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]

"""``zhllama data prepare``: corpus files -> compact token shards, once, in parallel, resumably.

Layout of a prepared folder::

    index.json          written last: its presence marks a finished folder
    shards/00000.bin    the tokens of every document, ``[BOS] text [EOS]``, end to end, as raw
                        little-endian uint16 (vocabulary < 65,536) or uint32
    shards/00000.ends.npy  where each document ends in the shard (int64, numpy format)
    shards/00000.json   the shard's counts and key: written after its two files, so a shard
                        with no .json (or a stale key) is unfinished and is written again

Why numpy files and not Arrow (``datasets``) or litdata: a pre-training block is a slice of one
flat token stream, and ``numpy.memmap`` reads that slice straight from the page cache with no
per-row framing. ``datasets.map`` kept three int64 columns per token (24 bytes; here 2 or 4) and
litdata would add a chunk format and a streaming runtime that a local folder does not need. The
shards are the Megatron/nanotron layout: flat tokens plus document boundaries.

Each shard is tokenized by one worker process (``num_proc``) from its own byte range of one file
(:mod:`zhllama.data.sources`), so the result does not depend on ``num_proc`` and a rerun after
``kill -9`` keeps every finished shard. The index records the tokenizer's fingerprint (checked
when training reads the folder), per-source and per-file counts, the mixing weights and the
settings.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from ..checks import temp_prefix
from ..errors import ZhllamaError
from ..io import atomic_file, write_json_atomic
from ..text import ReadStats
from .sources import Shard, expand_source, plan_shards, shard_documents

log = logging.getLogger(__name__)

FORMAT = 1  # bump when the shard layout or the tokenization rules change
INDEX_FILE = "index.json"
SHARD_DIR = "shards"
BATCH_DOCS = 1000


def token_dtype(vocab_size: int) -> str:
    """The smallest unsigned dtype that holds every token id."""
    return "uint16" if vocab_size <= 1 << 16 else "uint32"


def tokenizer_pipeline(tokenizer) -> str:
    """The tokenizer's whole pipeline as text (a fast tokenizer's JSON, or the SentencePiece model's hash)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    sp_model = getattr(tokenizer, "sp_model", None)  # zhllama.tokenizer.exact.SentencePieceTokenizer
    if backend is not None:
        body = backend.to_str()
    elif sp_model is not None:
        added = sorted((i, t.content) for i, t in tokenizer.added_tokens_decoder.items())
        body = hashlib.sha256(sp_model.serialized_model_proto()).hexdigest() + json.dumps(added, ensure_ascii=False)
    else:  # a slow tokenizer: fall back on datasets' own object hasher
        from datasets.fingerprint import Hasher

        body = Hasher.hash(tokenizer)
    return body


def tokenizer_fingerprint(tokenizer) -> str:
    """sha256 of what decides the token ids: the tokenizer's pipeline, BOS, EOS and vocabulary size."""
    specials = [tokenizer.bos_token_id, tokenizer.eos_token_id, len(tokenizer)]
    return hashlib.sha256((tokenizer_pipeline(tokenizer) + json.dumps(specials)).encode()).hexdigest()


@dataclass(frozen=True)
class Settings:
    """What the shards depend on besides the files and the tokenizer (recorded in the index)."""

    text_field: str = "text"
    skip_bad: bool = False
    shard_bytes: int = 64 << 20


def shard_key(shard: Shard, fingerprint: str, settings: Settings) -> str:
    """Identifies what a finished shard was made from: a rerun keeps it only when this matches."""
    st = os.stat(shard.path)
    body = [FORMAT, fingerprint, asdict(settings), asdict(shard), st.st_size, st.st_mtime_ns]
    return hashlib.sha256(json.dumps(body).encode()).hexdigest()[:20]


# ---------------------------------------------------------------- one shard (runs in a worker)

_WORKER: dict = {}


def _init_worker(tokenizer_bytes: bytes) -> None:
    _WORKER["tokenizer"] = pickle.loads(tokenizer_bytes)


def encode_documents(texts: list[str], tokenizer) -> list[list[int]]:
    """``[BOS] + ids + [EOS]`` per document; special-token text ("</s>") in a document is text."""
    encoded = tokenizer(texts, add_special_tokens=False, split_special_tokens=True)["input_ids"]
    head = [] if tokenizer.bos_token_id is None else [tokenizer.bos_token_id]
    return [head + e + [tokenizer.eos_token_id] for e in encoded]


def write_shard(shard: Shard, folder: str, key: str, dtype: str, settings: Settings, tokenizer=None) -> dict:
    """Tokenize ``shard`` into ``folder``: ``.bin`` and ``.ends.npy`` through temp files, then the ``.json``.

    Tokens and document ends go to disk batch by batch, so a worker's memory does not grow with the shard.
    """
    tok = tokenizer if tokenizer is not None else _WORKER["tokenizer"]
    base = Path(folder) / shard.name
    stats = ReadStats()
    fd, raw = tempfile.mkstemp(dir=folder, prefix=temp_prefix(base.with_suffix(".ends.npy")))  # swept if killed
    tmp_ends = Path(raw)
    try:
        tokens, chars = _tokenize_into(shard, tok, settings, stats, base, dtype, fd, tmp_ends)
    finally:
        tmp_ends.unlink(missing_ok=True)
    meta = {"key": key, "tokens": tokens, "documents": stats.documents, "chars": chars, "skipped_lines": stats.skipped}
    write_json_atomic(base.with_suffix(".json"), meta)  # last: the shard is finished
    return meta


def _tokenize_into(shard: Shard, tok, settings: Settings, stats: ReadStats, base: Path, dtype: str, fd: int,
                   tmp_ends: Path) -> tuple[int, int]:
    """Write the shard's ``.bin`` (tokens) and ``.ends.npy`` (through the raw int64 file ``fd``); ``(tokens, chars)``."""
    import numpy as np

    tokens = chars = 0
    with atomic_file(base.with_suffix(".bin")) as tmp_bin, open(tmp_bin, "wb") as out, open(fd, "wb") as ends:
        batch: list[str] = []
        for text in _then_none(shard_documents(shard, settings.text_field, settings.skip_bad, stats)):
            if text is not None:
                batch.append(text)
                chars += len(text)
            if batch and (text is None or len(batch) == BATCH_DOCS):
                ids = encode_documents(batch, tok)
                lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
                out.write(np.fromiter((i for d in ids for i in d), dtype=dtype, count=int(lengths.sum())).tobytes())
                ends.write((tokens + np.cumsum(lengths)).tobytes())
                tokens += int(lengths.sum())
                batch = []
        ends.close()
        _write_ends(tmp_ends, base.with_suffix(".ends.npy"), tokens)
    return tokens, chars


def _write_ends(raw: Path, dst: Path, tokens: int) -> None:
    """The int64 ends in ``raw`` as a .npy file of uint32 (int64 for a shard of 2^32 tokens or more)."""
    import numpy as np

    n = raw.stat().st_size // 8
    with atomic_file(dst) as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint32 if tokens < 1 << 32 else np.int64, shape=(n,))
        if n:
            out[:] = np.memmap(raw, dtype=np.int64, mode="r")  # cast through numpy's small buffers
        out.flush()
        del out


def _then_none(items):
    """``items`` followed by one ``None`` (flushes the last batch)."""
    yield from items
    yield None


def finished_shard(folder: Path, shard: Shard, key: str, itemsize: int) -> dict | None:
    """The shard's counts when it was finished with this key and its files are whole, else None."""
    meta_path = folder / f"{shard.name}.json"
    if not meta_path.is_file():
        return None
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    bin_path = folder / f"{shard.name}.bin"
    ok = (meta.get("key") == key and bin_path.is_file() and bin_path.stat().st_size == meta["tokens"] * itemsize
          and (folder / f"{shard.name}.ends.npy").is_file())
    return meta if ok else None


# ---------------------------------------------------------------- the whole folder

def prepare_shards(train_files: list[str], tokenizer, out: str | Path, weights: list[float] | None = None,
                   settings: Settings = Settings(), num_proc: int = 1, progress: bool = True) -> dict:
    """Write (or finish) the prepared folder ``out``; return its index.

    A folder whose index.json matches the inputs is returned as it is; otherwise every shard
    not yet finished with the same key is written, the stale ones are removed, and the index is
    written last.
    """
    out = Path(out)
    entries = [str(e) for e in train_files]
    if not entries:
        raise ZhllamaError("no pre-training files given", "pass one or more .txt/.jsonl/.json/.parquet files (.gz too)")
    if tokenizer.eos_token_id is None:
        raise ZhllamaError("the tokenizer has no EOS token", "set eos_token in tokenizer_config.json")
    weights = check_weights(weights, entries)
    sources = [expand_source(e) for e in entries]
    fingerprint = tokenizer_fingerprint(tokenizer)
    dtype = token_dtype(len(tokenizer))
    shards = plan_shards(sources, settings.shard_bytes)
    keys = [shard_key(s, fingerprint, settings) for s in shards]
    run_key = hashlib.sha256(json.dumps([entries, weights, keys]).encode()).hexdigest()[:20]
    if (out / INDEX_FILE).is_file():
        index = json.loads((out / INDEX_FILE).read_text(encoding="utf-8"))
        if index.get("key") == run_key:
            return {**index, "cached": True}
    folder = out / SHARD_DIR
    folder.mkdir(parents=True, exist_ok=True)
    (out / INDEX_FILE).unlink(missing_ok=True)  # the folder is being changed: it is unfinished until the end
    itemsize = 2 if dtype == "uint16" else 4
    metas = {s.number: finished_shard(folder, s, k, itemsize) for s, k in zip(shards, keys)}
    todo = [(s, k) for s, k in zip(shards, keys) if metas[s.number] is None]
    if len(todo) < len(shards):
        log.info("%d of %d shards are already finished", len(shards) - len(todo), len(shards))
    for number, meta in run_shards(todo, tokenizer, folder, dtype, settings, num_proc, progress):
        metas[number] = meta
    remove_stale_files(folder, {s.name for s in shards})
    index = build_index(entries, sources, weights, shards, [metas[s.number] for s in shards], fingerprint,
                        tokenizer, dtype, settings, run_key)
    write_json_atomic(out / INDEX_FILE, index)
    return {**index, "cached": False}


def check_weights(weights: list[float] | None, entries: list[str]) -> list[float]:
    if not weights:
        return [1.0] * len(entries)
    if len(weights) != len(entries):
        raise ZhllamaError(f"{len(weights)} weights for {len(entries)} train_files entries",
                           "give one weight per train_files entry (file, glob or folder), in the same order")
    if any(w < 0 for w in weights) or not any(w > 0 for w in weights):
        raise ZhllamaError(f"weights must be >= 0 with one > 0, got {weights}", "e.g. --weights 1 0.5")
    return [float(w) for w in weights]


def run_shards(todo, tokenizer, folder: Path, dtype: str, settings: Settings, num_proc: int, progress: bool):
    """Yield ``(shard number, counts)`` as shards finish; ``num_proc`` > 1 uses a process pool."""
    from tqdm.auto import tqdm

    total = sum(_shard_bytes(s) for s, _ in todo)
    bar = tqdm(total=total, unit="B", unit_scale=True, desc="tokenizing shards", disable=not progress or not todo)
    with bar:
        if num_proc <= 1 or len(todo) <= 1:
            for s, k in todo:
                yield s.number, write_shard(s, str(folder), k, dtype, settings, tokenizer)
                bar.update(_shard_bytes(s))
            return
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        # spawn, not fork: the caller may hold torch, CUDA or tokenizer threads that fork would copy broken
        pool = ProcessPoolExecutor(max_workers=min(num_proc, len(todo)), mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_init_worker, initargs=(pickle.dumps(tokenizer),))
        with pool:
            futures = {pool.submit(write_shard, s, str(folder), k, dtype, settings): s for s, k in todo}
            for fut in as_completed(futures):
                s = futures[fut]
                yield s.number, fut.result()
                bar.update(_shard_bytes(s))


def _shard_bytes(s: Shard) -> int:
    return (s.end if s.end != -1 else os.path.getsize(s.path)) - s.start


def remove_stale_files(folder: Path, names: set[str]) -> None:
    """Shard files of an earlier plan (more shards, other inputs) that this one does not use, and
    the temp files of killed runs."""
    from ..checks import sweep_stale_temps

    sweep_stale_temps(folder / INDEX_FILE, every_name=True)
    for p in folder.iterdir():
        if p.name.split(".")[0] not in names and not p.name.startswith("."):
            p.unlink()


def build_index(entries, sources, weights, shards, metas, fingerprint, tokenizer, dtype, settings, run_key) -> dict:
    """index.json: tokenizer, dtype, shards, per-source and per-file counts, weights, settings."""
    per_file: dict[str, dict] = {}
    for s, m in zip(shards, metas):
        f = per_file.setdefault(s.path, {"path": s.path, "tokens": 0, "documents": 0, "chars": 0, "skipped_lines": 0})
        for k in ("tokens", "documents", "chars", "skipped_lines"):
            f[k] += m[k]
    empty = [f for f in per_file.values() if f["documents"] == 0]
    if empty and not settings.skip_bad:
        raise ZhllamaError(f"{empty[0]['path']}: no documents (the file is empty or holds only blank lines)",
                           "remove the file, or pass --skip-bad to skip it (it is counted in the index)")
    src = []
    for i, (entry, files) in enumerate(zip(entries, sources)):
        rows = [per_file[f] for f in files]
        src.append({"name": entry, "weight": weights[i], "files": rows,
                    **{k: sum(r[k] for r in rows) for k in ("tokens", "documents", "chars", "skipped_lines")}})
    if not any(s["documents"] for s in src):
        raise ZhllamaError(f"no documents in {', '.join(entries)}", "give corpus files with text")
    return {
        "format": FORMAT, "key": run_key, "dtype": dtype,
        "tokenizer": {"fingerprint": fingerprint, "name": str(getattr(tokenizer, "name_or_path", "")),
                      "vocab_size": len(tokenizer), "bos_id": tokenizer.bos_token_id, "eos_id": tokenizer.eos_token_id},
        "settings": asdict(settings),
        "tokens": sum(s["tokens"] for s in src), "documents": sum(s["documents"] for s in src),
        "chars": sum(s["chars"] for s in src), "skipped_lines": sum(s["skipped_lines"] for s in src),
        "skipped_files": len(empty),
        "sources": src,
        "shards": [{"name": s.name, "source": s.source, "path": s.path, "start": s.start, "end": s.end,
                    "tokens": m["tokens"], "documents": m["documents"]} for s, m in zip(shards, metas)],
    }

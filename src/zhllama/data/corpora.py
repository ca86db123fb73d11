"""Continued pre-training data: documents -> packed ``block_size`` blocks.

Pipeline (``build_pt_dataset``):

1. read documents with :func:`zhllama.text.iter_documents` (.txt, .jsonl, .json, .gz) into
   an Arrow dataset;
2. tokenize once with ``datasets.map`` (``num_proc`` worker processes), each document becoming
   ``[BOS] + ids + [EOS]``, so an EOS separates every two documents;
3. hold out whole documents for validation (never a block cut from a training document);
4. concatenate each split and cut it into full ``block_size`` blocks: no padding at all, only the
   last, shorter-than-a-block tail of each split is dropped (and counted).

The result is saved under ``cache_dir`` in a folder named by a fingerprint of the file contents,
the tokenizer and every option, so building the same data again only loads it from disk.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterator

from ..errors import ZhllamaError, require_file
from ..io import atomic_dir, write_json_atomic
from ..text import ReadStats, iter_documents

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
    specials = [tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id, len(tokenizer)]
    return hashlib.sha256((body + json.dumps(specials)).encode()).hexdigest()


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

def _documents(files: list[str], text_field: str, skip_bad: bool, stats: ReadStats) -> Iterator[dict]:
    for path in files:
        for text in iter_documents(path, text_field=text_field, skip_bad=skip_bad, stats=stats):
            yield {"text": text}


def _tokenize_batch(batch: dict, tokenizer, bos_id: int | None, eos_id: int) -> dict:
    """``[BOS] + ids + [EOS]`` for each document of a batch (a ``datasets.map`` function)."""
    encoded = tokenizer(batch["text"], add_special_tokens=False, split_special_tokens=True)["input_ids"]  # "</s>" in text is text
    head = [] if bos_id is None else [bos_id]
    ids = [head + e + [eos_id] for e in encoded]
    return {"ids": ids, "n_tokens": [len(x) for x in ids], "n_chars": [len(t) for t in batch["text"]]}


def tokenize_documents(docs, tokenizer, num_proc: int):
    """The tokenized documents (columns ``ids``, ``n_tokens``, ``n_chars``)."""
    if tokenizer.eos_token_id is None:
        raise ZhllamaError("the tokenizer has no EOS token", "set eos_token in tokenizer_config.json")
    return docs.map(_tokenize_batch, batched=True, batch_size=1000, num_proc=num_proc if num_proc > 1 else None,
                    remove_columns=["text"], desc="tokenizing documents",
                    fn_kwargs={"tokenizer": tokenizer, "bos_id": tokenizer.bos_token_id,
                               "eos_id": tokenizer.eos_token_id})


def choose_validation_docs(n_tokens: list[int], split: float, block_size: int, seed: int) -> set[int]:
    """Whole documents, in a seeded random order, until they hold ``split`` of the tokens.

    At least one block's worth is taken (so validation is never empty by rounding), but never
    more than half of the corpus: a corpus shorter than two blocks gets no validation split.
    """
    import numpy as np

    total = int(sum(n_tokens))
    if split <= 0 or len(n_tokens) < 2 or total < 2 * block_size:
        return set()
    target = max(int(split * total), block_size)
    order = np.random.default_rng(seed).permutation(len(n_tokens))
    chosen, got = set(), 0
    for i in order:
        if got >= target:
            break
        if got + n_tokens[i] > total // 2:
            continue
        chosen.add(int(i))
        got += n_tokens[i]
    return chosen if got >= block_size else set()


def _pack(tokenized, block_size: int, counts: dict) -> Iterator[dict]:
    """Concatenate the documents and yield full blocks; the tail count goes into ``counts``.

    Written as a generator (not a batched ``map``) so blocks run across batch boundaries and only
    one tail per split is dropped, as if the whole split were one long sequence.
    """
    buf: list[int] = []
    for batch in tokenized.iter(batch_size=1000):
        for ids in batch["ids"]:
            buf.extend(ids)
        n_full = len(buf) // block_size
        for b in range(n_full):
            block = buf[b * block_size:(b + 1) * block_size]
            yield {"input_ids": block, "attention_mask": [1] * block_size, "labels": block}
        buf = buf[n_full * block_size:]
    counts["dropped"] = counts.get("dropped", 0) + len(buf)


def pack_blocks(tokenized, block_size: int, work: Path, name: str):
    from datasets import Features, Sequence, Value

    counts: dict = {}
    features = Features({c: Sequence(Value("int64")) for c in ("input_ids", "attention_mask", "labels")})
    blocks = list_or_generate(lambda: _pack(tokenized, block_size, counts), features, work / name)
    return blocks, counts.get("dropped", 0)


def list_or_generate(gen: Callable[[], Iterator[dict]], features, work: Path):
    """A Dataset written to ``work`` from ``gen()``, also when it yields nothing.

    (``Dataset.from_generator`` refuses an empty generator, and hashes its arguments, so the
    generator is created inside ``_run`` from a picklable factory.)
    """
    from datasets import Dataset
    from datasets.exceptions import DatasetGenerationError

    seen = {"rows": 0}
    try:
        return Dataset.from_generator(_run, features=features, cache_dir=str(work),
                                      gen_kwargs={"factory": gen, "seen": seen})
    except DatasetGenerationError as e:  # a bad line: show our one-line error, not the wrapper
        if isinstance(e.__cause__, ZhllamaError):
            raise e.__cause__ from None
        raise
    except ValueError:
        if seen["rows"]:
            raise
        return Dataset.from_dict({k: [] for k in features}, features=features)


def _run(factory, seen):
    for row in factory():
        seen["rows"] += 1
        yield row


def _build_pt(files, tokenizer, block_size, validation_split, num_proc, text_field, skip_bad, seed, work: Path):
    from datasets import DatasetDict

    stats = ReadStats()
    docs = list_or_generate(lambda: _documents(files, text_field, skip_bad, stats),
                            _text_features(), work / "docs")
    if len(docs) == 0:
        raise ZhllamaError(f"no documents in {', '.join(files)}" + (f" ({stats.skipped} bad lines skipped)" if stats.skipped else ""),
                           "give corpus files with text (one document per line in .txt, a text field in .jsonl)")
    tokenized = tokenize_documents(docs, tokenizer, num_proc)
    n_tokens = list(tokenized["n_tokens"])
    total = int(sum(n_tokens))
    if total < block_size:
        raise ZhllamaError(f"the corpus has {total} tokens, fewer than one block of {block_size}",
                           "add more text or lower --block-size")
    val_ids = choose_validation_docs(n_tokens, validation_split, block_size, seed)
    train_docs = tokenized.filter(lambda _, i: i not in val_ids, with_indices=True) if val_ids else tokenized
    val_docs = tokenized.select(sorted(val_ids))
    train, dropped_train = pack_blocks(train_docs, block_size, work, "train")
    validation, dropped_val = pack_blocks(val_docs, block_size, work, "validation")
    report = {
        "files": list(files), "documents": len(docs), "validation_documents": len(val_ids), "tokens": total,
        "chars": int(sum(list(tokenized["n_chars"]))), "block_size": block_size, "blocks": len(train) + len(validation),
        "train_blocks": len(train), "validation_blocks": len(validation),
        "dropped_tail_tokens": dropped_train + dropped_val, "skipped_lines": stats.skipped,
    }
    return DatasetDict({"train": train, "validation": validation}), report


def _text_features():
    from datasets import Features, Value

    return Features({"text": Value("string")})


def build_pt_dataset(files: list[str], tokenizer, block_size: int, validation_split: float = 0.01,
                     cache_dir: str | None = None, num_proc: int = 1, text_field: str = "text",
                     skip_bad: bool = False, seed: int = 0):
    """Packed pre-training blocks from corpus files -> ``(DatasetDict, report)``.

    The DatasetDict has ``train`` and ``validation``, each with columns ``input_ids``,
    ``attention_mask`` (all ones) and ``labels`` (= ``input_ids``), every row exactly
    ``block_size`` long.  Every document is ``[BOS] + text + [EOS]``; documents are concatenated
    and cut into blocks.  Validation holds whole documents (about ``validation_split`` of the
    tokens, at least one block); it is empty when the corpus is shorter than two blocks or
    ``validation_split`` is 0.

    Results are cached in ``cache_dir`` (default: the datasets cache, ``.../zhllama``) under a
    fingerprint of the files' bytes, the tokenizer and the options; a second call with the same
    inputs loads from disk without tokenizing.

    The report has: documents, validation_documents, tokens (BOS/EOS included), chars, blocks,
    train_blocks, validation_blocks, dropped_tail_tokens, skipped_lines, cache, cached.
    """
    files = [str(f) for f in files]
    if not files:
        raise ZhllamaError("no pre-training files given", "pass one or more .txt/.jsonl/.json(.gz) files")
    if block_size < 2:
        raise ZhllamaError(f"block_size must be at least 2, got {block_size}", "use e.g. 512 or 1024")
    if not 0 <= validation_split < 1:
        raise ZhllamaError(f"validation_split must be in [0, 1), got {validation_split}", "use e.g. 0.01")
    key = fingerprint("pt", files, tokenizer, block_size=block_size, validation_split=validation_split,
                      text_field=text_field, skip_bad=skip_bad, seed=seed)
    return cached_build("pt", key, cache_dir, lambda work: _build_pt(
        files, tokenizer, block_size, validation_split, num_proc, text_field, skip_bad, seed, work))

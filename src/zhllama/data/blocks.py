"""Reading a prepared folder: ``block_size`` blocks by memory map, validation held out by documents.

The shards (:mod:`zhllama.data.shards`) hold every document end to end. Training reads them as
two *streams*: the validation documents (whole documents, chosen by a seeded draw until they hold
``validation_split`` of the tokens) and everything else, each concatenated and cut into full
``block_size`` blocks; only the last partial block of each stream is dropped. A stream is a list
of token ranges in the shards, so nothing is copied: block ``i`` is read from the memory map when
it is asked for, and memory stays flat however large the corpus is (the page cache holds what
was read, and the kernel may drop it).

The blocks, and their numbering, are those the ``datasets.map`` path made before (the same
documents held out, the same cut), so the Trainer's seeded sampler gives the same order.

Per-source mixing weights (in the index) repeat a source's blocks (weight 2: twice) or keep a
seeded share of them (weight 0.3: about 30 %); a block belongs to the source of its first token.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import ZhllamaError
from .shards import FORMAT, INDEX_FILE, SHARD_DIR, tokenizer_fingerprint


class PreparedCorpus:
    """The shards of a prepared folder as one token array ``[0, tokens)`` and its documents."""

    def __init__(self, folder: str | Path, tokenizer=None):
        self.folder = Path(folder)
        index_path = self.folder / INDEX_FILE
        if not index_path.is_file():
            raise ZhllamaError(f"{self.folder} is not a finished prepared folder (no {INDEX_FILE})",
                               "run `zhllama data prepare` into it (a killed run continues where it stopped)")
        self.index = json.loads(index_path.read_text(encoding="utf-8"))
        if self.index.get("format") != FORMAT:
            raise ZhllamaError(f"{self.folder} was prepared in format {self.index.get('format')}, this zhllama reads {FORMAT}",
                               "prepare it again with this version")
        if tokenizer is not None:
            check_fingerprint(self.index, tokenizer, self.folder)
        shards = [s for s in self.index["shards"] if s["tokens"]]
        dtype = np.dtype(self.index["dtype"])
        base = self.folder / SHARD_DIR
        self._tokens = [np.memmap(base / f"{s['name']}.bin", dtype=dtype, mode="r") for s in shards]
        self._ends = [np.load(base / f"{s['name']}.ends.npy", mmap_mode="r") for s in shards]
        self._token_start = np.cumsum([0] + [s["tokens"] for s in shards])
        self._doc_start = np.cumsum([0] + [s["documents"] for s in shards])
        source_tokens = [sum(s["tokens"] for s in shards if s["source"] == i) for i in range(len(self.index["sources"]))]
        self.source_start = np.cumsum([0] + source_tokens)  # sources are contiguous, in order
        self.tokens = int(self._token_start[-1])
        self.documents = int(self._doc_start[-1])

    def read(self, start: int, stop: int) -> np.ndarray:
        """Tokens ``[start, stop)`` as int64 (across shard boundaries)."""
        parts = []
        while start < stop:
            k = int(np.searchsorted(self._token_start, start, side="right")) - 1
            local, end = start - self._token_start[k], min(stop, self._token_start[k + 1])
            parts.append(self._tokens[k][local:local + end - start])
            start = end
        return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)

    def doc_span(self, d: int) -> tuple[int, int]:
        """Token range of document ``d`` (0-based, in file order)."""
        k = int(np.searchsorted(self._doc_start, d, side="right")) - 1
        ends, local = self._ends[k], d - self._doc_start[k]
        begin = int(ends[local - 1]) if local else 0
        return int(self._token_start[k]) + begin, int(self._token_start[k]) + int(ends[local])


def check_fingerprint(index: dict, tokenizer, folder: Path) -> None:
    made, using = index["tokenizer"]["fingerprint"], tokenizer_fingerprint(tokenizer)
    if made != using:
        raise ZhllamaError(
            f"{folder} was prepared with another tokenizer: fingerprint {made[:16]} "
            f"({index['tokenizer'].get('name') or 'unnamed'}, {index['tokenizer']['vocab_size']:,} tokens), "
            f"but training uses {using[:16]} ({getattr(tokenizer, 'name_or_path', '') or 'unnamed'}, {len(tokenizer):,} tokens)",
            "prepare the data again with the training tokenizer (zhllama data prepare --tokenizer ...)")


def choose_validation_docs(n_docs: int, doc_tokens, total: int, split: float, block_size: int, seed: int) -> list[int]:
    """Whole documents, in a seeded random order, until they hold ``split`` of the tokens (sorted).

    At least one block's worth is taken (so validation is never empty by rounding), but never
    more than half of the corpus: a corpus shorter than two blocks gets no validation split.
    ``doc_tokens(d)`` is document ``d``'s length; only the documents drawn are measured.
    """
    if split <= 0 or n_docs < 2 or total < 2 * block_size:
        return []
    target = max(int(split * total), block_size)
    order = np.random.default_rng(seed).permutation(n_docs)
    chosen, got = [], 0
    for i in order:
        if got >= target:
            break
        n = doc_tokens(int(i))
        if got + n > total // 2:
            continue
        chosen.append(int(i))
        got += n
    return sorted(chosen) if got >= block_size else []


class Stream:
    """Token ranges of a :class:`PreparedCorpus` read as one sequence."""

    def __init__(self, corpus: PreparedCorpus, starts: np.ndarray, stops: np.ndarray):
        self.corpus, self.starts = corpus, starts
        self.offsets = np.concatenate([[0], np.cumsum(stops - starts)])  # stream position of each range
        self.length = int(self.offsets[-1])

    def read(self, pos: int, n: int) -> np.ndarray:
        parts = []
        while n > 0:
            r = int(np.searchsorted(self.offsets, pos, side="right")) - 1
            begin = int(self.starts[r]) + pos - int(self.offsets[r])
            take = min(n, int(self.offsets[r + 1]) - pos)
            parts.append(self.corpus.read(begin, begin + take))
            pos, n = pos + take, n - take
        return np.concatenate(parts)

    def to_corpus(self, pos: np.ndarray) -> np.ndarray:
        """Corpus positions of stream positions ``pos`` (vectorised)."""
        r = np.searchsorted(self.offsets, pos, side="right") - 1
        return self.starts[r] + pos - self.offsets[r]


class PackedBlocks:
    """``block_size`` blocks of a stream: item ``i`` is ``{"input_ids": int64 array}`` (labels: the collator).

    ``order`` (optional) maps items to blocks, for mixing weights; without it item ``i`` is block ``i``.
    """

    def __init__(self, stream: Stream, block_size: int, order: np.ndarray | None = None):
        self.stream, self.block_size, self.order = stream, block_size, order
        self.blocks = stream.length // block_size

    def __len__(self) -> int:
        return self.blocks if self.order is None else len(self.order)

    def __getitem__(self, i: int) -> dict:
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        i %= len(self)
        b = int(self.order[i]) if self.order is not None else i
        return {"input_ids": self.stream.read(b * self.block_size, self.block_size)}

    @property
    def dropped_tokens(self) -> int:
        return self.stream.length - self.blocks * self.block_size


def split_streams(corpus: PreparedCorpus, validation_split: float, block_size: int, seed: int) -> tuple[Stream, Stream, int]:
    """``(train stream, validation stream, validation documents)``."""
    val = choose_validation_docs(corpus.documents, lambda d: _length(corpus.doc_span(d)), corpus.tokens,
                                 validation_split, block_size, seed)
    spans = np.array([corpus.doc_span(d) for d in val], dtype=np.int64).reshape(-1, 2)
    val_stream = Stream(corpus, spans[:, 0], spans[:, 1])
    train_starts = np.concatenate([[0], spans[:, 1]])
    train_stops = np.concatenate([spans[:, 0], [corpus.tokens]])
    keep = train_stops > train_starts
    return Stream(corpus, train_starts[keep], train_stops[keep]), val_stream, len(val)


def _length(span: tuple[int, int]) -> int:
    return span[1] - span[0]


def weighted_order(blocks: PackedBlocks, corpus: PreparedCorpus, weights: list[float], seed: int) -> np.ndarray | None:
    """Items for mixing weights: each block repeated ``floor(w)`` times plus once with chance ``w - floor(w)``."""
    if all(w == 1 for w in weights):
        return None
    first = blocks.stream.to_corpus(np.arange(blocks.blocks, dtype=np.int64) * blocks.block_size)
    w = np.asarray(weights)[np.searchsorted(corpus.source_start, first, side="right") - 1]
    copies = np.floor(w).astype(np.int64) + (np.random.default_rng(seed).random(len(w)) < w - np.floor(w))
    return np.repeat(np.arange(blocks.blocks, dtype=np.int64), copies)


def open_blocks(folder: str | Path, tokenizer, block_size: int, validation_split: float, seed: int) -> tuple[dict, dict]:
    """``({"train": PackedBlocks, "validation": PackedBlocks}, report)`` of a prepared folder."""
    corpus = PreparedCorpus(folder, tokenizer)
    if corpus.tokens < block_size:
        raise ZhllamaError(f"the corpus has {corpus.tokens} tokens, fewer than one block of {block_size}",
                           "add more text or lower --block-size")
    train_stream, val_stream, n_val = split_streams(corpus, validation_split, block_size, seed)
    train, validation = PackedBlocks(train_stream, block_size), PackedBlocks(val_stream, block_size)
    weights = [s["weight"] for s in corpus.index["sources"]]
    train.order = weighted_order(train, corpus, weights, seed)
    idx = corpus.index
    report = {
        "prepared": str(corpus.folder), "dtype": idx["dtype"], "documents": corpus.documents,
        "validation_documents": n_val, "tokens": corpus.tokens, "chars": idx["chars"], "block_size": block_size,
        "blocks": train.blocks + validation.blocks, "train_blocks": train.blocks, "validation_blocks": validation.blocks,
        "train_items": len(train), "dropped_tail_tokens": train.dropped_tokens + validation.dropped_tokens,
        "skipped_lines": idx["skipped_lines"], "skipped_files": idx["skipped_files"],
        "sources": [{k: s[k] for k in ("name", "weight", "tokens", "documents")} for s in idx["sources"]],
    }
    return {"train": train, "validation": validation}, report


class BlockCollator:
    """Stack blocks into ``input_ids``; ``labels`` are the same ids and ``attention_mask`` all ones (no padding)."""

    def __call__(self, features: list[dict]) -> dict:
        import torch

        ids = torch.from_numpy(np.stack([f["input_ids"] for f in features]))
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids.clone()}

"""Tokenizer efficiency on held-out Chinese text: Llama-2, Chinese-LLaMA, Chinese-LLaMA-2 and ours.

Trains the project's own Chinese SentencePiece model on the Chinese fields of alpaca-zh parts
0..N-1, merges it into the Llama-2 tokenizer (``zhllama tokenizer merge``, default mode, capped at
Chinese-LLaMA-2's 55,296 pieces with ``<pad>``), and measures on the Chinese fields of the other
parts (never seen in training):

* Chinese characters per token, tokens per character, bytes per token, unknown rate, round trip;
* on the English fields of the same records (those without Chinese characters), the share of
  documents whose ids equal Llama-2's;
* the share of documents where the Hugging Face files (``zhllama.tokenizer.hf``; written here for
  the tokenizers that ship none) give exactly the SentencePiece ids, Chinese and English.

The ``extend`` merge is compared with its scores placed above and below the base's pieces.

``--byte-level`` measures the byte-level BPE bases instead: Llama-3 and Qwen2 before and after
``zhllama tokenizer merge`` with chinese-sp-20k (and Llama-3 with a 20K byte-level BPE trained on the
training parts), on held-out alpaca-zh and People's Daily, with the share of English, source code
and llama.cpp's CJK-free test vectors whose ids equal the base's.

Usage: python benchmarks/tokenizer_efficiency.py [--data ../shared/data] [--train-parts 40] [--byte-level]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from zhllama.tokenizer import spm as S
from zhllama.tokenizer.hf import write_hf_tokenizer
from zhllama.tokenizer.backend import merge_tokenizers
from zhllama.tokenizer.merge import has_chinese
from zhllama.tokenizer.encoders import SpTokenizer
from zhllama.tokenizer.stats import format_table, measure
from zhllama.tokenizer.train import TokenizerTrainConfig, train_tokenizer

PARTS = 53


def alpaca_fields(files: list[Path], keys: tuple[str, ...]) -> list[str]:
    docs = []
    for f in files:
        for rec in json.loads(f.read_text(encoding="utf-8")):
            docs += [rec[k] for k in keys if rec.get(k, "").strip()]
    return docs


def same_ids_rate(sp, base, docs: list[str]) -> float:
    return sum(a == b for a, b in zip(sp.encode(docs), base.encode(docs))) / len(docs)


def hf_exact_rate(folder: Path, docs: list[str]) -> float:
    """Share of docs where ``tokenizer.json`` (what other tools read) gives SentencePiece's ids.

    zhllama's own loader encodes tied-score models with SentencePiece, so it is read directly here."""
    from tokenizers import Tokenizer

    sp = S.processor(folder / "tokenizer.model")
    hf = Tokenizer.from_file(str(folder / "tokenizer.json"))
    hf_ids = [e.ids for e in hf.encode_batch(docs, add_special_tokens=False)]
    return sum(a == b for a, b in zip(sp.encode(docs), hf_ids)) / len(docs)


def byte_level_rows(data: Path, work: Path, train_parts: int, vocab_size: int) -> None:
    """``--byte-level``: Llama-3 and Qwen2 before and after extension with chinese-sp-20k (and, for Llama-3,
    a byte-level BPE trained with ``zhllama tokenizer train --type byte-bpe`` on alpaca-zh's training parts)."""
    from tokenizers import Tokenizer

    from zhllama.data.builtin import people_daily_lines
    from zhllama.tokenizer.encoders import HfTokenizer

    tok = data / "tokenizers"
    parts = [data / "alpaca-zh" / f"alpaca_chinese_part_{i}.json" for i in range(PARTS)]
    sp20k = tok / "chinese-sp-20k" / "chinese_sp.model"
    t0 = time.time()
    train_tokenizer(TokenizerTrainConfig(corpus=[str(f) for f in parts[:train_parts]], out=str(work / "zh-bbpe"),
                                         vocab_size=vocab_size, type="byte-bpe", base=str(tok / "llama3"),
                                         overwrite=True), progress=False)
    train_s = time.time() - t0
    candidates = {}
    for base in ("llama3", "qwen2"):
        candidates[base] = (tok / base, tok / base)
        t0 = time.time()
        merge_tokenizers(tok / base, [sp20k], work / f"{base}+sp20k", overwrite=True)
        print(f"merge {base} + chinese-sp-20k: {time.time() - t0:.1f} s")
        candidates[f"{base} + chinese-sp-20k"] = (work / f"{base}+sp20k", tok / base)
    merge_tokenizers(tok / "llama3", [work / "zh-bbpe"], work / "llama3+bbpe", overwrite=True)
    candidates[f"llama3 + byte-bpe {vocab_size // 1000}K"] = (work / "llama3+bbpe", tok / "llama3")

    zh = alpaca_fields(parts[train_parts:], ("instruction", "input", "output"))
    news = list(people_daily_lines())[:5000]
    en = [d for d in alpaca_fields(parts[train_parts:], ("en_instruction", "en_input", "en_output")) if not has_chinese(d)]
    stdlib = Path(json.__file__).resolve().parents[1]  # Python's own library: source code without Chinese
    code = [t for p in sorted(stdlib.glob("*.py")) if not has_chinese(t := p.read_text(encoding="utf-8", errors="replace"))]
    rows, extra = [], []
    for name, (folder, base) in candidates.items():
        t = HfTokenizer(folder)
        rows += [measure(t, name, "held-out alpaca-zh", zh), measure(t, name, "People's Daily", news)]
        ours, theirs = Tokenizer.from_file(str(folder / "tokenizer.json")), Tokenizer.from_file(str(base / "tokenizer.json"))
        vec = next((base / "llama.cpp").glob("*.gguf.inp")).read_text(encoding="utf-8").split("\n__ggml_vocab_test__\n")[:-1]
        same = []
        for docs in (en, code, [v for v in vec if not has_chinese(v)]):
            a, b = ours.encode_batch(docs, add_special_tokens=False), theirs.encode_batch(docs, add_special_tokens=False)
            same.append((sum(x.ids == y.ids for x, y in zip(a, b)), len(docs)))
        extra.append((name, len(ours.get_vocab()), same))
    print(f"\nbyte-bpe trained on {train_parts} alpaca-zh parts in {train_s:.0f} s; held-out: {len(zh):,} alpaca-zh "
          f"Chinese fields, {len(news):,} People's Daily paragraphs\n")
    print(format_table(rows))
    print()
    width = max(len(n) for n, *_ in extra)
    print(f"{'tokenizer'.ljust(width)}  {'vocab':>8}  ids = base: English            source code   llama.cpp vectors (CJK-free)")
    for name, size, same in extra:
        cells = "  ".join(f"{n:>7,}/{d:<7,} {n / d:>7.2%}" for n, d in same)
        print(f"{name.ljust(width)}  {size:>8,}  {cells}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--train-parts", type=int, default=40, help="alpaca-zh parts 0..N-1 train, the rest evaluate")
    ap.add_argument("--vocab-size", type=int, default=40000, help="pieces of our Chinese model before merging")
    ap.add_argument("--model-type", default="bpe", choices=("bpe", "unigram"))
    ap.add_argument("--max-pieces", type=int, default=55296, help="cap of the merged vocabulary, <pad> included")
    ap.add_argument("--placements", default="above,below", help="extend-mode score placements to compare")
    ap.add_argument("--work", help="keep the trained and merged tokenizers here")
    ap.add_argument("--byte-level", action="store_true", help="the Llama-3 / Qwen2 rows instead (byte-level BPE bases)")
    a = ap.parse_args()
    if a.byte_level:
        work = Path(a.work or tempfile.mkdtemp(prefix="zhllama-tok-bench-"))
        return byte_level_rows(Path(a.data), work, a.train_parts, 20000 if a.vocab_size == 40000 else a.vocab_size)

    data = Path(a.data)
    tok = data / "tokenizers"
    llama2 = tok / "llama2" / "tokenizer.model"
    parts = [data / "alpaca-zh" / f"alpaca_chinese_part_{i}.json" for i in range(PARTS)]
    train_files, eval_files = parts[:a.train_parts], parts[a.train_parts:]
    work = Path(a.work or tempfile.mkdtemp(prefix="zhllama-tok-bench-"))

    t0 = time.time()
    ours_sp = train_tokenizer(TokenizerTrainConfig(corpus=[str(f) for f in train_files], out=str(work / "ours-sp"),
                                          vocab_size=a.vocab_size, model_type=a.model_type, overwrite=True), progress=False)
    train_s = time.time() - t0
    train_mb = sum(len(d.encode()) for d in alpaca_fields(train_files, ("instruction", "input", "output"))) / 1e6
    # the official tokenizer ships no tokenizer.json: write ours to measure how exact HF files can be
    official = write_hf_tokenizer(tok / "chinese-llama2" / "tokenizer.model", work / "chinese-llama2")
    candidates = {"Llama-2": write_hf_tokenizer(llama2, work / "llama2"), "Chinese-LLaMA (49,953)": None,
                  "Chinese-LLaMA-2 (official)": official}
    t0 = time.time()
    merge_tokenizers(llama2, [tok / "chinese-sp-20k" / "chinese_sp.model"], work / "chinese-llama",
                     mode="chinese-llama", overwrite=True)
    candidates["Chinese-LLaMA (49,953)"] = work / "chinese-llama"
    for placement in a.placements.split(","):
        merge_tokenizers(llama2, [ours_sp], work / f"ours-{placement}", placement=placement, pad_token=True,
                         max_pieces=a.max_pieces, overwrite=True)
        candidates[f"ours (extend, {placement})"] = work / f"ours-{placement}"
    merge_s = (time.time() - t0) / (1 + len(a.placements.split(",")))

    zh = alpaca_fields(eval_files, ("instruction", "input", "output"))
    en_all = alpaca_fields(eval_files, ("en_instruction", "en_input", "en_output"))
    en = [d for d in en_all if not has_chinese(d)]  # a few English fields quote Chinese text
    base = S.processor(llama2)
    rows, extra = [], []
    for name, folder in candidates.items():
        t = SpTokenizer(folder)
        rows.append(measure(t, name, "held-out zh", zh))
        extra.append((name, same_ids_rate(t.sp, base, en), hf_exact_rate(folder, zh), hf_exact_rate(folder, en)))

    print(f"training: {len(train_files)} alpaca-zh parts, {train_mb:.1f} MB of Chinese fields, "
          f"{a.vocab_size:,}-piece {a.model_type} in {train_s:.0f} s; merge {merge_s:.1f} s each")
    print(f"held-out: {len(eval_files)} parts, {len(zh):,} Chinese and {len(en):,} English documents "
          f"({len(en_all) - len(en)} English fields holding Chinese characters left out)\n")
    print(format_table(rows))
    print()
    width = max(len(n) for n, *_ in extra)
    print(f"{'tokenizer'.ljust(width)}  English ids = Llama-2  HF = SentencePiece (zh)  HF = SentencePiece (en)")
    for name, same, hz, he in extra:
        print(f"{name.ljust(width)}  {same:>20.2%}  {hz:>23.2%}  {he:>23.2%}")
    if not a.work:
        print(f"\n(artifacts in {work}; pass --work DIR to choose)")


if __name__ == "__main__":
    main()

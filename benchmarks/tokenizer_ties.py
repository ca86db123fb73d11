"""Tied scores: how often the fast files miss SentencePiece's ids, and what the exact path costs.

For the official Chinese-LLaMA-2 tokenizer and the 49,953-piece Chinese-LLaMA merge (Llama-2 +
chinese-sp-20k, ``zhllama tokenizer merge --mode chinese-llama``), on every CMMLU question and
option text (dev + test, 59,585 cells as read), side by side in one run:

* SentencePiece itself (the reference ids, and its speed);
* ``tokenizer.json`` read by transformers (what zhllama loaded before, and what other tools load);
* zhllama's loader (``zhllama.tokenizer.load.load_tokenizer``: SentencePiece-backed for these models).

Encoding as zhllama encodes text: a batch, no BOS, ``split_special_tokens=True``.

Usage: python benchmarks/tokenizer_ties.py [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

from transformers import PreTrainedTokenizerFast

from zhllama.tokenizer.load import load_tokenizer
from zhllama.tokenizer import spm as S
from zhllama.tokenizer.spm import tied_pieces
from zhllama.tokenizer.hf import write_hf_tokenizer
from zhllama.tokenizer.backend import merge_tokenizers


def cmmlu_texts(data: Path) -> list[str]:
    texts = []
    for path in sorted((data / "cmmlu").glob("*/*.csv")):
        with path.open(encoding="utf-8", newline="") as f:
            texts += [row[k] for row in csv.DictReader(f) for k in ("Question", "A", "B", "C", "D")]
    return texts


def timed(encode, texts):
    start = time.perf_counter()
    ids = encode(texts)
    return ids, time.perf_counter() - start


def measure(name: str, folder: Path, texts: list[str]) -> list[str]:
    sp = S.processor(folder / "tokenizer.model")
    fast = PreTrainedTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"))
    ours = load_tokenizer(folder)
    ref, t_sp = timed(sp.encode, texts)
    rows = [f"{name:22s} {'sentencepiece':28s} {0:>7,} {0:>7.2%} {t_sp:7.2f} s"]
    for label, tok in (("tokenizer.json (fast)", fast), (f"zhllama ({type(ours).__name__})", ours)):
        ids, t = timed(lambda x, tok=tok: tok(x, add_special_tokens=False, split_special_tokens=True)["input_ids"], texts)
        bad = sum(a != b for a, b in zip(ids, ref))
        rows.append(f"{name:22s} {label:28s} {bad:>7,} {bad / len(texts):>7.2%} {t:7.2f} s")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    args = ap.parse_args()
    data = Path(args.data)
    texts = cmmlu_texts(data)
    with tempfile.TemporaryDirectory() as tmp:
        merged, official = Path(tmp) / "chinese-llama-49953", Path(tmp) / "chinese-llama2"
        tok = data / "tokenizers"
        write_hf_tokenizer(tok / "chinese-llama2" / "tokenizer.model", official)  # the files zhllama writes for it
        merge_tokenizers(tok / "llama2" / "tokenizer.model", [tok / "chinese-sp-20k" / "chinese_sp.model"], merged,
                         mode="chinese-llama")
        print(f"{len(texts):,} CMMLU question/option texts")
        print(f"{'tokenizer':22s} {'encoder':28s} {'differ':>7s} {'share':>7s} {'time':>9s}")
        for name, folder in (("chinese-llama2", official), ("chinese-llama-49953", merged)):
            print(f"  ({name}: {tied_pieces(S.load_proto(folder / 'tokenizer.model')):,} tied mergeable pieces)")
            print("\n".join(measure(name, folder, texts)))


if __name__ == "__main__":
    main()

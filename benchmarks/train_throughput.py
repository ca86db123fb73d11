"""Training throughput on CPU: tokens/s for `zhllama train pt` and `zhllama train sft`.

Builds a tiny benchmark model (a 4,000-piece LLaMA-style SentencePiece tokenizer trained on People's
Daily + English docstrings, `zhllama model init` hidden 256, 4 layers, 4 heads) and times a few
optimizer steps of each configuration through the real `train()` (Trainer, peft, collators):

* pt: packed blocks of People's Daily text, LoRA (r=8, + embed_tokens/lm_head) and full-parameter;
* sft: Alpaca-zh records (../shared/data/alpaca-zh part 0 when present), `alpaca` template, LoRA
  with random batches and with group-by-length batches, and full-parameter.

tokens/s counts real (non-padding) tokens per second of training; "padding" is the share of the
positions in the batches that are padding (pt packs full blocks: 0 by construction), measured over
one epoch of batches drawn the way the Trainer draws them.

Usage: python benchmarks/train_throughput.py [--steps 10] [--batch 8] [--block 256] [--max-length 256]
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

import torch

from zhllama.data.builtin import people_daily_lines, stdlib_docstrings
from zhllama.model.init import InitConfig, init_model
from zhllama.tokenizer.hf import write_hf_tokenizer
from zhllama.tokenizer.load import load_tokenizer
from zhllama.train import TrainConfig, train

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def build_tokenizer(work: Path) -> Path:
    import sentencepiece as spm

    corpus = work / "sp.txt"
    corpus.write_text("\n".join(list(stdlib_docstrings()[:3000]) + list(people_daily_lines()[:3000])), encoding="utf-8")
    spm.SentencePieceTrainer.train(
        input=str(corpus), model_prefix=str(work / "sp"), vocab_size=4000, model_type="bpe", character_coverage=0.9995,
        byte_fallback=True, split_digits=True, normalization_rule_name="identity", remove_extra_whitespaces=False,
        add_dummy_prefix=True, unk_id=0, bos_id=1, eos_id=2, pad_id=-1, num_threads=2, minloglevel=2)
    return write_hf_tokenizer(work / "sp.model", work / "tokenizer")


def sft_records(n: int) -> tuple[list[dict], str]:
    part = SHARED / "alpaca-zh" / "alpaca_chinese_part_0.json"
    if part.is_file():
        rows = json.loads(part.read_text(encoding="utf-8"))[:n]
        return [{k: r[k] for k in ("instruction", "input", "output")} for r in rows], "alpaca-zh part 0"
    lines = [s for s in people_daily_lines() if len(s) > 20][:n]  # fallback: continue a sentence
    return [{"instruction": "续写下面的句子", "input": s[: len(s) // 2], "output": s[len(s) // 2:]} for s in lines], \
        "People's Daily continuation"


def padding_fraction(dataset, tokenizer, batch: int, group_by_length: bool, seed: int = 0) -> float:
    """Share of padded positions over one epoch of batches (random order, or length-grouped)."""
    from transformers.trainer_pt_utils import LengthGroupedSampler

    from zhllama.data.instructions import SftCollator

    lengths = [len(x) for x in dataset["input_ids"]]
    g = torch.Generator().manual_seed(seed)
    order = list(LengthGroupedSampler(batch, lengths=lengths, generator=g)) if group_by_length else \
        torch.randperm(len(lengths), generator=g).tolist()
    collate = SftCollator(tokenizer)
    real = total = 0
    for i in range(0, len(order), batch):
        mask = collate([dataset[j] for j in order[i:i + batch]])["attention_mask"]
        real, total = real + int(mask.sum()), total + mask.numel()
    return 1 - real / total


def run(name: str, stage: str, cfg: TrainConfig) -> dict:
    t0 = time.perf_counter()
    result = train(cfg, stage)
    m = result["metrics"]
    return {"name": name, "stage": stage, "tokens": m["tokens_seen"], "runtime": m["train_runtime"],
            "tokens_per_s": m["train_tokens_per_second"], "steps_per_s": m["train_steps_per_second"],
            "wall": time.perf_counter() - t0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--block", type=int, default=256)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--sft-records", type=int, default=400)
    args = ap.parse_args()
    random.seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        tok_dir = build_tokenizer(work)
        model = init_model(InitConfig(tokenizer=str(tok_dir), out=str(work / "model"), hidden_size=256, layers=4, heads=4))
        corpus = work / "corpus.txt"
        corpus.write_text("\n".join(people_daily_lines()[:4000]), encoding="utf-8")
        records, sft_source = sft_records(args.sft_records)
        sft_file = work / "sft.json"
        sft_file.write_text(json.dumps(records, ensure_ascii=False), encoding="utf-8")
        common = dict(model=str(model), batch_size=args.batch, max_steps=args.steps, logging_steps=args.steps,
                      save_steps=10_000, validation_split=0.0, block_size=args.block, max_length=args.max_length,
                      cache_dir=str(work / "cache"), lr_scheduler="constant", warmup_ratio=0.0, template="alpaca")
        lora = dict(lora_rank=8, lora_alpha=32, modules_to_save=["embed_tokens", "lm_head"])
        plans = [
            ("pt LoRA r=8", "pt", dict(train_files=[str(corpus)], **lora)),
            ("pt full", "pt", dict(train_files=[str(corpus)], full=True)),
            ("sft LoRA r=8, random batches", "sft", dict(train_files=[str(sft_file)], **lora)),
            ("sft LoRA r=8, group_by_length", "sft", dict(train_files=[str(sft_file)], group_by_length=True, **lora)),
            ("sft full", "sft", dict(train_files=[str(sft_file)], full=True)),
        ]
        rows = []
        for i, (name, stage, extra) in enumerate(plans):
            cfg = TrainConfig(output_dir=str(work / f"run{i}"), **common, **extra)
            rows.append(run(name, stage, cfg))
        from zhllama.data.instructions import build_sft_dataset

        tok = load_tokenizer(tok_dir)
        sft, _ = build_sft_dataset([str(sft_file)], tok, "alpaca", args.max_length, cache_dir=str(work / "cache"))
        pad = {False: padding_fraction(sft["train"], tok, args.batch, False),
               True: padding_fraction(sft["train"], tok, args.batch, True)}
    print(f"\ntiny benchmark model: hidden 256, 4 layers, vocab 4,000; CPU threads {torch.get_num_threads()}; "
          f"batch {args.batch}, pt block {args.block}, sft max_length {args.max_length} ({sft_source}); "
          f"{args.steps} steps each\n")
    print("| configuration | real tokens/s | steps/s | padding |")
    print("|---|---:|---:|---:|")
    for r in rows:
        padding = 0.0 if r["stage"] == "pt" else pad["group_by_length" in r["name"]]
        print(f"| {r['name']} | {r['tokens_per_s']:,.0f} | {r['steps_per_s']:.2f} | {padding:.1%} |")


if __name__ == "__main__":
    main()

"""Preference alignment on CPU: `train rm`, `train dpo`, `train orpo` and `train sft` on the same tiny model.

Builds a tiny LLaMA (1,200-piece LLaMA-style SentencePiece tokenizer on English docstrings + People's
Daily, `zhllama model init` hidden 64, 2 layers) and a learnable synthetic preference: the prompt asks
for a sentence; the chosen reply is a Chinese People's Daily sentence, the rejected one an English
docstring line.  Training and held-out pairs share no sentence.  Then, through the real stage code:

* `train rm` (LoRA, merged into final/): held-out pair accuracy and mean score margin, before
  (the untrained score head) and after;
* `train dpo` (LoRA, beta 0.1, sigmoid loss): held-out mean log p(chosen) - log p(rejected), before
  and after;
* `train orpo` (LoRA, beta 0.1): the same held-out margin, before and after;
* `train sft` on the prompt -> chosen conversations, same batch size, for throughput beside dpo.

tokens/s counts the non-padding tokens of the batches per second of training (a dpo or rm batch
holds both replies of each pair; dpo also runs the reference model, the adapter disabled).

Usage: python benchmarks/align.py [--steps 16] [--batch 8] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from zhllama.align import TRAINERS, train_align
from zhllama.align.reward import evaluate_reward, logprob_margin
from zhllama.data.builtin import people_daily_lines, stdlib_docstrings
from zhllama.model.init import InitConfig, init_model
from zhllama.tokenizer.hf import write_hf_tokenizer
from zhllama.train import TrainConfig, train


def build_model(work: Path) -> Path:
    import sentencepiece as spm

    corpus = work / "sp.txt"
    corpus.write_text("\n".join(list(stdlib_docstrings()[:3000]) + list(people_daily_lines()[:300])), encoding="utf-8")
    spm.SentencePieceTrainer.train(
        input=str(corpus), model_prefix=str(work / "sp"), vocab_size=1200, model_type="bpe", character_coverage=0.98,
        byte_fallback=True, split_digits=True, normalization_rule_name="identity", remove_extra_whitespaces=False,
        add_dummy_prefix=True, unk_id=0, bos_id=1, eos_id=2, pad_id=-1, num_threads=2, minloglevel=2)
    tok = write_hf_tokenizer(work / "sp.model", work / "tokenizer")
    return init_model(InitConfig(tokenizer=str(tok), out=str(work / "model"), hidden_size=64, layers=2, heads=4,
                                 kv_heads=2, intermediate_size=128, max_position=512, seed=0))


def pairs(start: int, n: int) -> list[dict]:
    zh = [t[:24] for t in people_daily_lines()[:3000] if len(t) >= 12]
    en = [t[:48] for t in stdlib_docstrings()[:3000] if len(t) >= 20 and t.isascii()]
    return [{"instruction": "请写一句话。", "input": zh[start + i][:6], "chosen": zh[start + i + 1000],
             "rejected": en[start + i]} for i in range(n)]


def write_jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--out", default=None, help="work folder (default: a temp folder)")
    a = ap.parse_args()
    work = Path(a.out or tempfile.mkdtemp(prefix="zhllama-align-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    model = str(build_model(work))
    train_file = write_jsonl(work / "train.jsonl", pairs(0, 96))
    heldout = [write_jsonl(work / "heldout.jsonl", pairs(500, 40))]
    sft_file = write_jsonl(work / "sft.jsonl", [{"instruction": p["instruction"], "input": p["input"], "output": p["chosen"]}
                                                 for p in pairs(0, 96)])
    common = dict(model=model, max_length=96, batch_size=a.batch, learning_rate=5e-3, lr_scheduler="constant",
                  warmup_ratio=0.0, max_steps=a.steps, logging_steps=1, save_steps=10_000, lora_rank=8, lora_alpha=16,
                  lora_dropout=0.0, seed=0, cache_dir=str(work / "cache"), overwrite=True)
    rows = []

    before = evaluate_reward(model, heldout, template="alpaca", seed=0)
    rm = train_align(TRAINERS["rm"].schema(**common, train_files=[train_file], output_dir=str(work / "rm")), "rm")
    after = evaluate_reward(rm["model_dir"], heldout)
    rows.append(("train rm", rm["metrics"]["train_tokens_per_second"], "held-out pair accuracy",
                 f"{before['accuracy']:.1%} -> {after['accuracy']:.1%} (mean margin {before['mean_margin']:.3f} -> "
                 f"{after['mean_margin']:.3f})"))

    before = logprob_margin(model, heldout, template="alpaca")
    for name in ("dpo", "orpo"):
        run = train_align(TRAINERS[name].schema(**{**common, "learning_rate": 2e-3}, train_files=[train_file],
                                                output_dir=str(work / name)), name)
        after = logprob_margin(model, heldout, lora=run["model_dir"])
        rows.append((f"train {name}", run["metrics"]["train_tokens_per_second"],
                     "held-out log p(chosen) - log p(rejected)",
                     f"{before['mean_margin']:.2f} -> {after['mean_margin']:.2f} (chosen ahead on "
                     f"{before['accuracy']:.0%} -> {after['accuracy']:.0%} of pairs)"))

    sft = train(TrainConfig(**common, train_files=[sft_file], output_dir=str(work / "sft")), "sft")
    rows.append(("train sft", sft["metrics"]["train_tokens_per_second"], "(throughput reference)", ""))

    print(f"\n{a.steps} steps of batch {a.batch} each, LoRA r=8, tiny LLaMA (hidden 64, 2 layers), CPU\n")
    print("| stage | tokens/s | measure | before -> after |")
    print("| --- | ---: | --- | --- |")
    for name, tps, what, change in rows:
        print(f"| {name} | {tps:,.0f} | {what} | {change} |")
    print(f"\ndpo / sft throughput: {rows[1][1] / rows[3][1]:.2f}x; orpo / sft: {rows[2][1] / rows[3][1]:.2f}x")


if __name__ == "__main__":
    main()

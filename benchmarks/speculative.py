"""Speculative sampling, measured: a target and a much smaller draft trained on the same Chinese text.

Both models are trained here with zhllama itself (`tokenizer train`, `model init`, `train pt --full`)
on People's Daily (the demo's corpus), with one Chinese SentencePiece tokenizer, so they agree on
many tokens, as Chinese-LLaMA-2-7B and its 1.3B draft do. The sizes keep the target's cost per
token well above the draft's (about 7B vs 1.3B in spirit: here ~20x in parameters).

Two drafts are compared. The first is pre-trained on the same text as the target. The second is
that draft fine-tuned on the target's own greedy continuations of training-text prompts
(sequence-level distillation, as DistillSpec and Medusa's self-distillation align a draft): a
draft is only as useful as its agreement with the target, and a small model trained for minutes
agrees with a bigger one on little beyond the most frequent tokens. The evaluation prompts are
validation lines, never used for the distillation. Then, on those held-out People's Daily
prompts, greedy decoding with and without each draft:

* acceptance rate (draft tokens the target kept) and tokens gained per target forward pass;
* tokens/s with and without the draft, measured alternately on the same prompts, and the ratio;
* whether the greedy output is identical (it must be: speculative greedy is the target's greedy).

Models are kept in --work and reused by a later run (delete the folder to retrain).

Usage: python benchmarks/speculative.py [--work DIR] [--target-steps 1000] [--distill-prompts 1500]
       [--draft-tokens 3 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

TARGET = dict(hidden_size=512, layers=8, heads=8)
DRAFT = dict(hidden_size=128, layers=1, heads=2)


def build_tokenizer(work: Path, corpus: Path) -> Path:
    from zhllama.tokenizer.hf import write_hf_tokenizer
    from zhllama.tokenizer.train import TokenizerTrainConfig, train_tokenizer

    out = work / "tokenizer"
    if not (out / "tokenizer_config.json").exists():
        sp = train_tokenizer(TokenizerTrainConfig(corpus=[str(corpus)], vocab_size=4000, out=str(work / "sp"),
                                                  overwrite=True), progress=False)
        write_hf_tokenizer(sp, out)
    return out


def train_model(work: Path, name: str, shape: dict | Path, tokenizer: Path, corpus: Path, steps: int, lr: float) -> Path:
    """``model init`` (or continue from the model folder ``shape``) + ``train pt --full``; reuses a finished run."""
    from zhllama.model.init import InitConfig, init_model
    from zhllama.train.config import TrainConfig
    from zhllama.train.run import train

    final = work / name / "final"
    if (final / "config.json").exists():
        return final
    init = shape if isinstance(shape, Path) else \
        init_model(InitConfig(tokenizer=str(tokenizer), out=str(work / f"{name}-init"), max_position=1024, seed=0,
                              overwrite=True, **shape))
    cfg = TrainConfig(model=str(init), train_files=[str(corpus)], output_dir=str(work / name), full=True,
                      block_size=128, batch_size=8, learning_rate=lr, warmup_ratio=0.05, max_steps=steps,
                      validation_split=0.0, logging_steps=50, save_steps=10_000, cache_dir=str(work / "cache"),
                      overwrite=True, report_to=[])
    return Path(train(cfg, "pt")["model_dir"])


def distillation_corpus(work: Path, target, tokenizer, corpus: Path, n_prompts: int, new_tokens: int) -> Path:
    """The target's greedy continuations of ``n_prompts`` training lines (their first 24 characters), one per line."""
    from tqdm import tqdm

    from zhllama.infer.engine import Engine
    from zhllama.infer.sampling import SamplingParams
    from zhllama.io import write_text_atomic

    out = work / f"distill-{n_prompts}x{new_tokens}.txt"
    if out.exists():
        return out
    lines = [line[:24] for line in corpus.read_text(encoding="utf-8").splitlines() if len(line) > 44]
    prompts = lines[:: max(1, len(lines) // n_prompts)][:n_prompts]
    engine = Engine(target, tokenizer, "none")
    params = SamplingParams(max_new_tokens=new_tokens, temperature=0.0, repetition_penalty=1.0, stop=())
    texts = []
    for start in tqdm(range(0, len(prompts), 32), desc="target's greedy continuations", unit="batch"):
        batch = prompts[start:start + 32]
        outs = engine.generate([engine.text_prompt(p) for p in batch], params)
        texts += [p + o.text.replace("\n", "") for p, o in zip(batch, outs)]
    write_text_atomic(out, "\n".join(texts) + "\n")
    return out


def held_out_prompts(valid: Path, n: int, chars: int) -> list[str]:
    """The first ``chars`` characters of ``n`` validation lines (never trained on), spread over the file."""
    lines = [line for line in valid.read_text(encoding="utf-8").splitlines() if len(line) > chars + 20]
    return [line[:chars] for line in lines[:: max(1, len(lines) // n)][:n]]


def decode(engine, prompts: list[list[int]], new_tokens: int) -> tuple[float, list[list[int]]]:
    """Wall seconds and outputs of greedy decoding, one request at a time (as speculative runs)."""
    from zhllama.infer.sampling import SamplingParams

    params = SamplingParams(max_new_tokens=new_tokens, temperature=0.0, repetition_penalty=1.0, stop=())
    start = time.perf_counter()
    outs = [engine.generate([p], params)[0].token_ids for p in prompts]
    return time.perf_counter() - start, outs


def measure(target, tokenizer, draft, ks: list[int], prompts_text: list[str], new_tokens: int, repeats: int):
    from zhllama.infer.engine import Engine
    from zhllama.infer.speculative import SpeculativeStats

    plain = Engine(target, tokenizer, "none")
    prompts = [plain.text_prompt(t) for t in prompts_text]
    decode(plain, prompts[:1], 4)  # warm-up
    rows = []
    for k in ks:
        spec = Engine(plain.model, plain.tokenizer, "none", draft=draft, draft_tokens=k)
        decode(spec, prompts[:1], 4)
        spec.speculative_stats = SpeculativeStats()  # count the measured runs only
        t_plain, t_spec, same = [], [], True
        for _ in range(repeats):  # alternate, so a noisy neighbour slows both alike
            secs, ref = decode(plain, prompts, new_tokens)
            t_plain.append(secs)
            secs, out = decode(spec, prompts, new_tokens)
            t_spec.append(secs)
            same = same and out == ref
        tokens = sum(len(o) for o in ref)
        stats = spec.speculative_stats
        rows.append(dict(k=k, tokens=tokens, plain=tokens / statistics.median(t_plain),
                         spec=tokens / statistics.median(t_spec), acceptance=stats.acceptance_rate,
                         per_pass=stats.tokens_per_round, identical=same))
    return rows


def forward_cost(model, repeats: int = 20) -> float:
    """Milliseconds of one single-token forward pass with a 64-token KV cache."""
    import torch
    from transformers import DynamicCache

    times = []
    with torch.inference_mode():
        for _ in range(repeats):
            cache = DynamicCache(config=model.config)
            model(input_ids=torch.ones(1, 64, dtype=torch.long), cache=cache, use_cache=True)
            start = time.perf_counter()
            model(input_ids=torch.ones(1, 1, dtype=torch.long), cache=cache, use_cache=True)
            times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default="speculative-bench", help="folder for the tokenizer, models and data (reused)")
    ap.add_argument("--target-steps", type=int, default=1000)
    ap.add_argument("--draft-steps", type=int, default=300)
    ap.add_argument("--draft-tokens", type=int, nargs="+", default=[3, 5])
    ap.add_argument("--distill-prompts", type=int, default=1500, help="training prompts the target continues")
    ap.add_argument("--distill-tokens", type=int, default=96, help="greedy tokens per continuation")
    ap.add_argument("--distill-steps", type=int, default=600)
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import torch

    from zhllama.model.load import load_model
    from zhllama.pipeline.sources import materialize

    torch.set_num_threads(args.threads)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    corpus = materialize("builtin:people_daily?split=train&max_chars=600000", work / "data")
    valid = materialize("builtin:people_daily?split=valid&max_chars=50000", work / "data")
    tokenizer = build_tokenizer(work, corpus)
    target_dir = train_model(work, "target", TARGET, tokenizer, corpus, args.target_steps, 1e-3)
    draft_dir = train_model(work, "draft", DRAFT, tokenizer, corpus, args.draft_steps, 3e-3)
    target, tok = load_model(target_dir)
    distill = distillation_corpus(work, target, tok, corpus, args.distill_prompts, args.distill_tokens)
    distilled_dir = train_model(work, f"draft-distilled-{distill.stem}-{args.distill_steps}", draft_dir, tokenizer,
                                distill, args.distill_steps, 2e-3)
    (draft, _), (distilled, _) = load_model(draft_dir), load_model(distilled_dir)
    models = {"target": target, "draft": draft}
    sizes = {name: sum(p.numel() for p in m.parameters()) for name, m in models.items()}
    costs = {name: forward_cost(m) for name, m in models.items()}
    print(f"target {sizes['target'] / 1e6:.1f}M parameters, {costs['target']:.2f} ms/token; draft "
          f"{sizes['draft'] / 1e6:.2f}M, {costs['draft']:.2f} ms/token (cost ratio {costs['target'] / costs['draft']:.1f}x); "
          f"{args.prompts} held-out prompts x {args.new_tokens} greedy tokens, median of {args.repeats}, "
          f"torch threads {args.threads}\n")
    print("| draft | draft tokens k | acceptance | tokens per target pass | plain tok/s | speculative tok/s | speed-up | "
          "greedy identical |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    prompts = held_out_prompts(valid, args.prompts, 24)
    for name, model in (("same text", draft), (f"distilled ({args.distill_prompts} continuations)", distilled)):
        for row in measure(target, tok, model, args.draft_tokens, prompts, args.new_tokens, args.repeats):
            print(f"| {name} | {row['k']} | {row['acceptance']:.1%} | {row['per_pass']:.2f} | {row['plain']:.1f} | "
                  f"{row['spec']:.1f} | {row['spec'] / row['plain']:.2f}x | {'yes' if row['identical'] else 'NO'} |",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

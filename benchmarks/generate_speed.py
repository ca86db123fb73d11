"""Time to first token and tokens/s: zhllama's engine (what `zhllama generate` runs) vs model.generate.

Builds a ~20M-parameter LLaMA with random weights (`zhllama.model.init`, hidden 256, 4 layers, on
Mistral-7B's 32,000-piece LLaMA-format tokenizer shipped by mistral-common) in a temp folder, then
for batch sizes 1 and 8 and for greedy and sampled decoding (temperature 0.7, top-p 0.9, top-k 40,
repetition penalty 1.1) measures, on the same left-padded prompts:

* TTFT: wall time of a call generating one token (prefill + first token), median of --repeats;
* tokens/s: generated tokens (summed over the batch, EOS included) / wall time for --new-tokens
  tokens per request, median of --repeats.

``--llamacpp`` prints instead the llama.cpp table (batch 1, greedy, no repetition penalty): an
81M-parameter random LLaMA (hidden 512, 14 layers, MLP 1536 so k-quants apply, the same tokenizer),
run by zhllama's engine, by ``--engine llamacpp`` on its f16, q8_0 and q4_k_m exports, and by
llama-cpp-python directly on the same files: its ``Llama`` class, and a bare C-API loop
(``llama_decode`` + llama.cpp's greedy sampler: the floor for any Python wrapper); same settings
(plain CPU weight buffers, the same threads), on the same prompts one at a time, in interleaved rounds (every runner once per
round, --repeats rounds; medians over rounds).  TTFT: one generated token (prefill + the first
token); tokens/s: generated tokens over wall time for --new-tokens tokens.  Needs llama-cpp-python.

Usage: python benchmarks/generate_speed.py [--new-tokens 64] [--repeats 3] [--threads 1]
       python benchmarks/generate_speed.py --llamacpp [--new-tokens 64] [--repeats 5] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

PROMPTS = [
    "中国的首都是北京，它是一座历史悠久的城市。",
    "Write a short poem about the moon and the sea.",
    "人工智能正在改变我们的生活方式，例如",
    "def fibonacci(n):",
    "春节是中国最重要的传统节日之一，",
    "The quick brown fox jumps over the lazy dog because",
    "请用三句话介绍一下长城。",
    "Large language models are trained on",
]


def build_model(root: Path) -> Path:
    import mistral_common

    from zhllama.model.init import InitConfig, init_model
    from zhllama.tokenizer.hf import write_hf_tokenizer

    sp = Path(mistral_common.__file__).parent / "data" / "tokenizer.model.v1"
    tok = write_hf_tokenizer(sp, root / "tokenizer")
    return init_model(InitConfig(tokenizer=str(tok), out=str(root / "model"), hidden_size=256, layers=4, heads=4,
                                 max_position=2048, seed=0))


def build_llamacpp_model(root: Path) -> Path:
    import mistral_common

    from zhllama.model.init import InitConfig, init_model
    from zhllama.tokenizer.hf import write_hf_tokenizer

    sp = Path(mistral_common.__file__).parent / "data" / "tokenizer.model.v1"
    tok = write_hf_tokenizer(sp, root / "tokenizer")
    return init_model(InitConfig(tokenizer=str(tok), out=str(root / "model"), hidden_size=512, layers=14, heads=8,
                                 intermediate_size=1536, max_position=2048, seed=0))


def timed(fn, repeats: int) -> tuple[float, int]:
    """Median wall time of ``fn()`` and the token count it returned."""
    times, count = [], 0
    for _ in range(repeats):
        start = time.perf_counter()
        count = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), count


def engine_run(engine, prompts, sampled: bool, new_tokens: int):
    from zhllama.infer.engine import SamplingParams

    params = (SamplingParams(max_new_tokens=new_tokens, seed=0) if sampled else
              SamplingParams(max_new_tokens=new_tokens, temperature=0.0, repetition_penalty=1.0))
    return lambda: sum(c.completion_tokens for c in engine.generate(prompts, params))


def hf_run(engine, prompts, sampled: bool, new_tokens: int):
    import torch

    width = max(len(p) for p in prompts)
    ids = torch.tensor([[engine.pad_id] * (width - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    kwargs = (dict(do_sample=True, temperature=0.7, top_p=0.9, top_k=40, repetition_penalty=1.1) if sampled else
              dict(do_sample=False, repetition_penalty=1.0))
    eos = engine.tokenizer.eos_token_id

    def run():
        torch.manual_seed(0)
        out = engine.model.generate(ids, attention_mask=mask, max_new_tokens=new_tokens, pad_token_id=engine.pad_id,
                                    **kwargs)
        new = out[:, width:].tolist()
        return sum(row.index(eos) + 1 if eos in row else len(row) for row in new)

    return run


def llamacpp_runners(folder: Path, prompts: list[str], threads: int) -> dict:
    """name -> run(prompt index, new tokens) -> tokens generated, for every runner of the llama.cpp table."""
    import llama_cpp

    from zhllama.infer.backend import BackendConfig
    from zhllama.infer.config import EngineConfig
    from zhllama.infer.engine import Engine, SamplingParams
    from zhllama.infer.llamacpp_engine import model_params

    ours = Engine.load(folder)
    ids = [ours.text_prompt(t) for t in prompts]

    def engine_runner(engine):
        def run(i, n):
            params = SamplingParams(max_new_tokens=n, temperature=0.0, repetition_penalty=1.0)
            return engine.generate([ids[i]], params)[0].completion_tokens
        return run

    runners = {"zhllama engine (torch)": engine_runner(ours)}
    llama_cpp.llama_cpp.llama_model_default_params = lambda: model_params(llama_cpp, False)  # the engine's buffers
    for outtype in ("f16", "q8_0", "q4_k_m"):
        engine = BackendConfig(kind="llamacpp", outtype=outtype).load(EngineConfig(model=str(folder)), threads=threads)
        runners[f"--engine llamacpp {outtype}"] = engine_runner(engine)
        llm = llama_cpp.Llama(model_path=str(engine.path), n_ctx=engine.context_length, n_threads=threads,
                              n_threads_batch=threads, verbose=False)
        runners[f"llama-cpp-python Llama {outtype}"] = llama_runner(llm, ids)
        runners[f"llama-cpp-python C-API loop {outtype}"] = c_api_runner(llama_cpp, engine, ids)
    return runners


def c_api_runner(llama_cpp, engine, ids):
    """The floor for any wrapper: a bare ``llama_decode`` + greedy-sampler loop over llama-cpp-python's C API,
    on the engine's own llama.cpp context (same file, buffers, threads), with no zhllama code per token."""
    lib, ctx = llama_cpp, engine.ctx
    vocab = lib.llama_model_get_vocab(engine.llama_model)
    batch = lib.llama_batch_init(512, 0, 1)
    sampler = lib.llama_sampler_chain_init(lib.llama_sampler_chain_default_params())
    lib.llama_sampler_chain_add(sampler, lib.llama_sampler_init_greedy())

    def decode(tokens, start):
        batch.n_tokens = len(tokens)
        for j, tok in enumerate(tokens):
            batch.token[j], batch.pos[j], batch.n_seq_id[j], batch.logits[j] = tok, start + j, 1, j == len(tokens) - 1
            batch.seq_id[j][0] = 0
        assert lib.llama_decode(ctx, batch) == 0

    def run(i, n):
        lib.llama_memory_clear(lib.llama_get_memory(ctx), True)
        decode(ids[i], 0)
        pos, count = len(ids[i]), 0
        while count < n:
            tok = lib.llama_sampler_sample(sampler, ctx, -1)
            count += 1
            if lib.llama_vocab_is_eog(vocab, tok) or count == n:
                return count
            decode([tok], pos)
            pos += 1
        return count
    return run


def llama_runner(llm, ids):
    eos = llm.token_eos()

    def run(i, n):
        llm.reset()  # no KV prefix reuse between runs: every run prefills its prompt, as the engine does
        count = 0
        for tok in llm.generate(ids[i], top_k=1, temp=0.0, repeat_penalty=1.0):
            count += 1
            if tok == eos or count == n:
                return count
        return count
    return run


def llamacpp_table(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    prompts = PROMPTS[:4]
    with tempfile.TemporaryDirectory() as tmp:
        folder = build_llamacpp_model(Path(tmp))
        runners = llamacpp_runners(folder, prompts, args.threads)
        from zhllama.infer.engine import Engine

        params = sum(p.numel() for p in Engine.load(folder).model.parameters())
        print(f"model: {params / 1e6:.1f}M parameters, {len(prompts)} prompts one at a time, {args.new_tokens} new "
              f"tokens, greedy, {args.threads} threads everywhere, {args.repeats} interleaved rounds (medians)\n")
        ttft: dict[str, list[float]] = {name: [] for name in runners}
        speed: dict[str, list[float]] = {name: [] for name in runners}
        for name, run in runners.items():  # warm-up
            run(0, 2)
        for _ in range(args.repeats):
            for name, run in runners.items():
                start = time.perf_counter()
                for i in range(len(prompts)):
                    run(i, 1)
                ttft[name].append((time.perf_counter() - start) / len(prompts))
                start, tokens = time.perf_counter(), 0
                for i in range(len(prompts)):
                    tokens += run(i, args.new_tokens)
                speed[name].append(tokens / (time.perf_counter() - start))
        base = statistics.median(speed["zhllama engine (torch)"])
        print("| runner | TTFT (ms) | tokens/s | vs zhllama engine |")
        print("|---|---:|---:|---:|")
        for name in runners:
            tps = statistics.median(speed[name])
            print(f"| {name} | {statistics.median(ttft[name]) * 1000:.1f} | {tps:.1f} | {tps / base:.2f}x |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the benchmark box's cores are shared)")
    ap.add_argument("--llamacpp", action="store_true", help="the llama.cpp table (needs llama-cpp-python)")
    args = ap.parse_args()
    if args.llamacpp:
        llamacpp_table(args)
        return 0

    import torch

    from zhllama.infer.engine import Engine

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        engine = Engine.load(build_model(Path(tmp)))
        params = sum(p.numel() for p in engine.model.parameters())
        print(f"model: {params / 1e6:.1f}M parameters, vocab {len(engine.tokenizer)}, torch threads {args.threads}, "
              f"{args.new_tokens} new tokens per request, median of {args.repeats}\n")
        print(f"| batch | decoding | runner | TTFT (ms) | tokens/s |")
        print(f"|---:|---|---|---:|---:|")
        for batch in (1, 8):
            prompts = [engine.text_prompt(t) for t in PROMPTS[:batch]]
            for sampled in (False, True):
                for name, make in (("model.generate", hf_run), ("zhllama engine", engine_run)):
                    make(engine, prompts, sampled, 2)()  # warm-up
                    ttft, _ = timed(make(engine, prompts, sampled, 1), args.repeats)
                    secs, tokens = timed(make(engine, prompts, sampled, args.new_tokens), args.repeats)
                    print(f"| {batch} | {'sampled' if sampled else 'greedy'} | {name} | {ttft * 1000:.1f} | "
                          f"{tokens / secs:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

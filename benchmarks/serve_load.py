"""Load test of `zhllama serve`: N concurrent streaming clients vs the same requests one by one.

Builds a ~20M-parameter LLaMA (random weights, a LLaMA-style SentencePiece tokenizer trained on
the built-in Chinese/English text) in a temp folder, starts a real `zhllama serve` process on
127.0.0.1 for each ``--scheduler`` (continuous and static batching, side by side in one run) and
sends the same streaming chat requests (fixed seeds, ``max_tokens`` each)

* one by one (the baseline: an idle server), then
* from C concurrent clients for each C in ``--clients``; with ``--stagger-ms S`` client k sends its
  first request k*S ms after the first one (staggered arrivals: requests arrive while others decode),

and prints, per run: generated tokens per second (from the server's own ``usage`` counts), the
speed-up over the baseline, request latency and time-to-first-token percentiles, TTFT p95 over the
idle server's TTFT p50, and the mean batch the server reported (requests per batch for static,
live requests per decode step for continuous).

``--engines zhllama,vllm`` repeats the runs with ``zhllama serve --engine vllm`` on the same model
(float32 for both, vLLM with ``--enforce-eager`` and the first ``--scheduler``: it schedules its own
steps), one server after the other; run it with the
Python of vLLM's virtual environment (see docs/serve.md).  ``llamacpp`` in ``--engines`` runs
``zhllama serve --engine llamacpp --outtype q8_0`` (the folder exported once, before the timed runs,
with the first ``--scheduler``; ``--threads`` are llama.cpp's there); it needs llama-cpp-python.

Usage: python benchmarks/serve_load.py [--clients 4,8] [--requests 16] [--max-tokens 48] [--threads 1]
                                       [--scheduler continuous,static] [--stagger-ms 150] [--engines zhllama,vllm]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx


def build_model(root: Path, hidden: int, layers: int, vocab: int, intermediate: int | None = None) -> tuple[Path, int]:
    """A LLaMA-style SentencePiece tokenizer + a random LLaMA of the given shape; returns (folder, params)."""
    import sentencepiece as spm
    from safetensors import safe_open

    from zhllama.data.builtin import people_daily_lines, stdlib_docstrings
    from zhllama.model.init import InitConfig, init_model
    from zhllama.tokenizer.hf import write_hf_tokenizer

    corpus = root / "corpus.txt"
    corpus.write_text("\n".join(list(people_daily_lines()[:6000]) + list(stdlib_docstrings()[:4000])), encoding="utf-8")
    spm.SentencePieceTrainer.train(
        input=str(corpus), model_prefix=str(root / "sp"), vocab_size=vocab, model_type="bpe", byte_fallback=True,
        split_digits=True, character_coverage=0.9995, normalization_rule_name="identity",
        remove_extra_whitespaces=False, unk_id=0, bos_id=1, eos_id=2, pad_id=-1, num_threads=2, minloglevel=2,
        hard_vocab_limit=False)
    tok = write_hf_tokenizer(root / "sp.model", root / "tokenizer")
    out = init_model(InitConfig(tokenizer=str(tok), out=str(root / "model"), hidden_size=hidden, layers=layers,
                                heads=hidden // 64, intermediate_size=intermediate or hidden * 8 // 3 // 32 * 32,
                                max_position=1024))
    with safe_open(str(out / "model.safetensors"), "pt") as f:
        params = sum(_prod(f.get_slice(k).get_shape()) for k in f.keys())
    return out, params


def _prod(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


ENGINE_ARGS = {"zhllama": [], "vllm": ["--engine", "vllm", "--enforce-eager", "--dtype", "float32"],
               "llamacpp": ["--engine", "llamacpp", "--outtype", "q8_0"]}


def start_server(model: Path, port: int, batch: int, threads: int | None, wait_ms: float,
                 scheduler: str, engine: str = "zhllama") -> subprocess.Popen:
    extra = (["--threads", str(threads)] if threads else []) + ["--batch-wait-ms", str(wait_ms),
                                                                  "--scheduler", scheduler] + ENGINE_ARGS[engine]
    proc = subprocess.Popen(
        [sys.executable, "-m", "zhllama", "serve", "--model", str(model), "--model-name", "bench", "--port", str(port),
         "--max-batch-size", str(batch), "--max-queue", "256", "--log-level", "warning", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 600  # vLLM starts in 1-3 minutes on a busy CPU
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {proc.stdout.read()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise SystemExit("server did not start within 600 s")


QUESTIONS = ["北京有什么好玩的地方？", "请介绍一下长江。", "How do I read a file in Python?", "写一首关于春天的诗。",
             "什么是机器学习？", "Explain list comprehensions.", "上海的天气怎么样？", "给我讲一个笑话。"]


def request_body(i: int, max_tokens: int) -> dict:
    return {"model": "bench", "messages": [{"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]}],
            "max_tokens": max_tokens, "temperature": 0.8, "seed": i, "stream": True,
            "stream_options": {"include_usage": True}}


async def one_request(client: httpx.AsyncClient, url: str, body: dict) -> dict:
    """Send one streaming request; return its latency, time to first token and generated tokens."""
    start = time.perf_counter()
    first = None
    tokens = 0
    async with client.stream("POST", url, json=body) as r:
        r.raise_for_status()
        async for line in r.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
            elif first is None and chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                first = time.perf_counter() - start
    latency = time.perf_counter() - start
    return {"latency": latency, "ttft": first if first is not None else latency, "tokens": tokens}


async def run_clients(base: str, bodies: list[dict], clients: int,
                      stagger_s: float = 0.0) -> tuple[list[dict], float, float]:
    """``clients`` workers take requests from a shared queue, each sending its next one when the last ends.

    One round of tiny requests first opens every client's keep-alive connection (long-running
    clients have theirs open); the server's batch counters are read around the timed part.  With
    ``stagger_s`` client k starts k * stagger_s after the first.
    """
    results: list[dict] = []

    async def drain(client, queue, sink, delay):
        await asyncio.sleep(delay)
        while not queue.empty():
            sink.append(await one_request(client, f"{base}/v1/chat/completions", queue.get_nowait()))

    async def round_of(client, items, sink, stagger=0.0):
        queue: asyncio.Queue = asyncio.Queue()
        for b in items:
            queue.put_nowait(b)
        await asyncio.gather(*(drain(client, queue, sink, k * stagger) for k in range(clients)))

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:
        await round_of(client, [request_body(i, 2) for i in range(clients)], [])
        before = (await client.get(f"{base}/health")).json()
        start = time.perf_counter()
        await round_of(client, bodies, results, stagger_s)
        wall = time.perf_counter() - start
        after = (await client.get(f"{base}/health")).json()
    return results, wall, mean_batch(before, after)


def mean_batch(before: dict, after: dict) -> float:
    """Live requests per decode step (continuous), else requests per batch (static), between two /health reads."""
    steps = after.get("steps", 0) - before.get("steps", 0)
    if steps:
        return (after["step_jobs"] - before["step_jobs"]) / steps
    return (after["jobs"] - before["jobs"]) / max(1, after["batches"] - before["batches"])


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q / 100 * (len(s) - 1))))]


def row(label: str, results: list[dict], wall: float, base_tps: float | None, idle_ttft: float | None,
        batch: float) -> list[str]:
    tokens = sum(r["tokens"] for r in results)
    tps = tokens / wall
    lat = [r["latency"] for r in results]
    ttft = [r["ttft"] for r in results]
    speed = f"{tps / base_tps:.2f}x" if base_tps else "1.00x"
    vs_idle = f"{pct(ttft, 95) / idle_ttft:.2f}x" if idle_ttft else "-"
    return [label, str(len(results)), str(tokens), f"{wall:.1f}", f"{tps:.1f}", speed,
            f"{pct(lat, 50):.2f}", f"{pct(lat, 95):.2f}", f"{pct(ttft, 50):.3f}", f"{pct(ttft, 95):.3f}", vs_idle,
            f"{batch:.1f}"]


def print_table(rows: list[list[str]]) -> None:
    head = ["engine, scheduler", "mode", "reqs", "tokens", "wall s", "tok/s", "speed-up", "lat p50", "lat p95",
            "TTFT p50", "TTFT p95", "TTFT p95/idle", "batch"]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    print(" | ".join(h.ljust(w) for h, w in zip(head, widths)))
    print("-|-".join("-" * w for w in widths))
    for r in rows:
        print(" | ".join(c.ljust(w) for c, w in zip(r, widths)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", default="8", help="comma-separated concurrency levels (default 8)")
    ap.add_argument("--requests", type=int, default=16, help="requests per run (the same ones in every run)")
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--hidden", type=int, default=384)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--vocab", type=int, default=8000)
    ap.add_argument("--threads", type=int, default=None, help="the server's torch threads (default: torch's choice)")
    ap.add_argument("--batch-wait-ms", type=float, default=30.0, help="the server's --batch-wait-ms")
    ap.add_argument("--scheduler", default="continuous,static", help="the server's --scheduler, each run side by side")
    ap.add_argument("--stagger-ms", type=float, default=0.0,
                    help="client k sends its first request k times this after the first (staggered arrivals)")
    ap.add_argument("--engines", default="zhllama",
                    help="comma-separated: zhllama, vllm, llamacpp (default zhllama); vllm and llamacpp run with the "
                         "first --scheduler only")
    args = ap.parse_args()
    levels = [int(c) for c in args.clients.split(",")]
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    with tempfile.TemporaryDirectory(prefix="zhllama-serve-bench-") as tmp:
        model, params = build_model(Path(tmp), args.hidden, args.layers, args.vocab)
        if "llamacpp" in args.engines:
            from zhllama.export.cache import cached_gguf

            cached_gguf(model, "q8_0")  # exported here, so the server's start is not timed with it
        print(f"model: {params / 1e6:.1f}M parameters (hidden {args.hidden}, {args.layers} layers, vocab "
              f"{args.vocab}), {args.requests} streaming chat requests x max_tokens {args.max_tokens}, "
              f"clients staggered by {args.stagger_ms:g} ms, server torch threads: {args.threads or 'default'}, "
              f"{os.cpu_count()} CPU cores\n")
        bodies = [request_body(i, args.max_tokens) for i in range(args.requests)]
        rows = []
        for engine in args.engines.split(","):
            for scheduler in args.scheduler.split(",")[:1 if engine != "zhllama" else None]:
                rows += run_scheduler(scheduler, model, levels, bodies, args, engine)
        print_table(rows)
        print("\nlatency and TTFT in seconds; TTFT p95/idle: over the sequential run's TTFT p50 (an idle server); "
              "batch: mean requests per batch (static) or live requests per decode step (continuous)")


def run_scheduler(scheduler: str, model: Path, levels: list[int], bodies: list[dict], args,
                  engine: str = "zhllama") -> list[list[str]]:
    """The sequential baseline and every concurrency level against one server with ``--scheduler`` on ``engine``."""
    port = free_port()
    proc = start_server(model, port, max(levels), args.threads, args.batch_wait_ms, scheduler, engine)
    base = f"http://127.0.0.1:{port}"
    rows, base_tps, idle_ttft = [], None, None
    try:
        for clients in [1, *levels]:
            stagger = args.stagger_ms / 1000 if clients > 1 else 0.0
            results, wall, batch = asyncio.run(run_clients(base, bodies, clients, stagger))
            label = "sequential" if clients == 1 else f"{clients} clients"
            rows.append([f"{engine} {scheduler}", *row(label, results, wall, base_tps, idle_ttft, batch)])
            base_tps = base_tps or sum(r["tokens"] for r in results) / wall
            idle_ttft = idle_ttft or pct([r["ttft"] for r in results], 50)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    return rows


if __name__ == "__main__":
    main()

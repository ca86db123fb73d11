"""One prepared GPU check: training, QLoRA, attention kernels, decode speed and the server under load.

Run it from the repository root on a GPU machine (no network needed)::

    python benchmarks/gpu_check.py --out gpu_check.json        # ~0.5B random LLaMA, <= 8 min on one H200
    python benchmarks/gpu_check.py --smoke --out smoke.json    # tiny model on CPU, seconds (the suite runs this)

Wheels the machine lacks (datasets, sentencepiece, fastapi, uvicorn, bitsandbytes, flash-attn, ...)
travel with the working tree in ``benchmarks/wheels/`` (see docs/scale.md for the ``pip download``
command); when that folder exists they are installed from it with ``pip --no-index`` first.

Stages, each reported as ok / skipped (with the reason) / failed (with the error), so one missing
package never hides the other numbers:

* ``lora-pt``, ``lora-sft``: bf16 LoRA continued pre-training and instruction tuning (zhllama train);
* ``lora-pt-flash``: the same pre-training with ``--attn flash_attention_2`` (when flash-attn imports);
* ``qlora-pt``: the same with ``--qlora`` (when bitsandbytes imports); peak memory vs bf16 LoRA;
* ``decode``: batch-1 greedy decoding in tokens/s against the memory-bandwidth ceiling
  (bandwidth / weight bytes: every generated token reads every weight once);
* ``serve-N``: ``zhllama serve`` answering N concurrent clients, aggregate generated tokens/s.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

# Model shapes: ~0.5B parameters on the GPU (hidden 1280, 24 layers), a toy for --smoke.
FULL = dict(hidden_size=1280, layers=24, heads=20, kv_heads=4, intermediate_size=3456, max_position=2048)
SMOKE = dict(hidden_size=64, layers=2, heads=4, kv_heads=2, intermediate_size=128, max_position=512)
# Peak memory bandwidth in GB/s by device name (public spec sheets); --bandwidth overrides.
BANDWIDTH_GBS = {"H200": 4800, "H100": 3350, "A100": 2039, "L40S": 864, "A10": 600, "RTX 4090": 1008}


def install_wheels(folder: Path) -> str:
    """pip-install every wheel in ``folder`` without the network; a no-op when it is absent."""
    wheels = sorted(str(p) for p in folder.glob("*.whl")) if folder.is_dir() else []
    if not wheels:
        return f"no wheels in {folder}"
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--find-links", str(folder), *wheels]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    return f"installed {len(wheels)} wheels" if proc.returncode == 0 else f"pip failed: {proc.stderr.strip()[-300:]}"


def corpus_text(files: int) -> list[str]:
    """Text every Python has (docstrings of ``files`` standard-library modules) plus some Chinese."""
    import ast
    import sysconfig

    zh = ["人民日报记者今天在北京报道，经济发展和改革开放取得新成就。", "中华人民共和国成立以来，社会主义建设不断发展。",
          "今天天气很好，我们去公园散步吧。", "请把这句话翻译成英文。", "中国的首都是北京。"]
    lines = []
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))[:files]:
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.Module)) and ast.get_docstring(node):
                lines += [t.strip() for t in ast.get_docstring(node).split("\n\n") if len(t.strip()) > 40]
    return lines + zh * 50


def build_tokenizer(out: Path, texts: list[str], vocab: int) -> Path:
    """A byte-level BPE tokenizer (tokenizers only, no sentencepiece) with LLaMA's special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=vocab, special_tokens=["<unk>", "<s>", "</s>"],
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>",
                                   pad_token="</s>")
    fast.save_pretrained(str(out))
    return out


def make_model(root: Path, smoke: bool) -> tuple[Path, Path, Path]:
    """(model folder, pt corpus, sft data) under ``root``."""
    from zhllama.model.init import InitConfig, init_model

    texts = corpus_text(3 if smoke else 60)
    tok = build_tokenizer(root / "tokenizer", texts, 400 if smoke else 8000)
    model = init_model(InitConfig(tokenizer=str(tok), out=str(root / "model"), **(SMOKE if smoke else FULL)))
    corpus = root / "corpus.txt"
    corpus.write_text("\n".join(texts) + "\n", encoding="utf-8")
    rows = [{"instruction": t[:20], "input": "", "output": t[20:100] or t} for t in texts[:40 if smoke else 400]]
    sft = root / "sft.json"
    sft.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    return model, corpus, sft


def cuda_peak_reset() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def cuda_peak_gib() -> float | None:
    import torch

    return round(torch.cuda.max_memory_allocated() / 2**30, 2) if torch.cuda.is_available() else None


def train_stage(stage: str, model: Path, data: Path, out: Path, smoke: bool, **over) -> dict:
    """A short zhllama training run; tokens/s, final loss and peak GPU memory."""
    import gc

    from zhllama.train import TrainConfig, train

    steps = 3 if smoke else 30
    cfg = TrainConfig(model=str(model), train_files=[str(data)], output_dir=str(out), block_size=64 if smoke else 1024,
                      max_length=384 if smoke else 1024, batch_size=2 if smoke else 8, max_steps=steps,
                      logging_steps=1, save_steps=10_000, validation_split=0, lora_rank=8 if smoke else 64,
                      lora_alpha=16 if smoke else 128, gradient_checkpointing=not smoke, cache_dir=str(out.parent / "cache"),
                      overwrite=True, **over)
    cuda_peak_reset()
    result = train(cfg, stage)
    gc.collect()
    m = result["metrics"]
    return {"tokens_per_s": round(m["train_tokens_per_second"], 1), "loss": round(m["train_loss"], 4),
            "steps": steps, "peak_gib": cuda_peak_gib()}


def decode_stage(model: Path, smoke: bool, bandwidth_gbs: float | None) -> dict:
    """Batch-1 greedy decode speed and the bandwidth ceiling bandwidth / weight bytes."""
    import torch

    from zhllama.infer.engine import Engine
    from zhllama.infer.sampling import SamplingParams

    engine = Engine.load(str(model), template="none")
    weight_bytes = sum(p.numel() * p.element_size() for p in engine.model.parameters())
    prompt = engine.tokenizer("今天天气很好，" * 4)["input_ids"]
    params = SamplingParams(max_new_tokens=16 if smoke else 256, temperature=0, repetition_penalty=1.0)
    engine.generate([prompt], SamplingParams(max_new_tokens=4, temperature=0))  # warm-up (kernels, caches)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    done = engine.generate([prompt], params)[0]
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    row = {"tokens": done.completion_tokens, "tokens_per_s": round(done.completion_tokens / seconds, 1),
           "weight_gb": round(weight_bytes / 1e9, 3), "dtype": str(next(engine.model.parameters()).dtype)}
    if bandwidth_gbs:
        ceiling = bandwidth_gbs * 1e9 / weight_bytes
        row.update(ceiling_tokens_per_s=round(ceiling, 1), fraction_of_ceiling=round(row["tokens_per_s"] / ceiling, 3))
    del engine
    return row


def serve_stage(model: Path, clients: int, smoke: bool) -> dict:
    """``zhllama serve`` in a subprocess; ``clients`` concurrent completions; aggregate generated tokens/s."""
    import socket
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "zhllama", "serve", "--model", str(model), "--port", str(port), "--template", "none",
           "--max-batch-size", str(clients), "--log-level", "warning"]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    server = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}/v1/completions"
    tokens = 16 if smoke else 128

    def ask(i: int) -> int:
        body = json.dumps({"model": model.name, "prompt": f"第{i}个问题：今天天气", "max_tokens": tokens, "temperature": 0}).encode()
        req = urllib.request.Request(url, body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=600) as r:
            return json.loads(r.read())["usage"]["completion_tokens"]

    try:
        wait_until_up(f"http://127.0.0.1:{port}/health", server)
        ask(0)  # warm-up
        start = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            counts = list(pool.map(ask, range(clients)))
        seconds = time.perf_counter() - start
    finally:
        server.terminate()
        server.wait(timeout=60)
    return {"clients": clients, "tokens": sum(counts), "seconds": round(seconds, 2),
            "tokens_per_s": round(sum(counts) / seconds, 1)}


def wait_until_up(url: str, server: subprocess.Popen, limit: float = 300) -> None:
    import urllib.request

    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited: {server.stderr.read()[-500:]}")
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError("the server did not come up")


def run_stage(results: dict, name: str, fn, *args, needs: tuple[str, ...] = (), **kwargs) -> None:
    """Run one stage into ``results[name]``: ok with its numbers, skipped with a reason, or failed with the error."""
    import importlib.util

    missing = [m for m in needs if importlib.util.find_spec(m) is None]
    if missing:
        results[name] = {"status": "skipped", "reason": f"{', '.join(missing)} not installed"}
    else:
        start = time.perf_counter()
        try:
            results[name] = {"status": "ok", **fn(*args, **kwargs)}
        except Exception as e:  # noqa: BLE001 - the check reports every stage, whatever breaks
            results[name] = {"status": "failed", "reason": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"}
            traceback.print_exc()
        results[name]["wall_s"] = round(time.perf_counter() - start, 1)
    print(f"[gpu_check] {name}: {results[name]}", file=sys.stderr, flush=True)


def device_info(bandwidth: float | None) -> dict:
    import torch

    info = {"torch": torch.__version__, "cuda": torch.cuda.is_available()}
    if info["cuda"]:
        name = torch.cuda.get_device_name(0)
        info.update(device=name, memory_gib=round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1))
        bandwidth = bandwidth or next((v for k, v in BANDWIDTH_GBS.items() if k in name), None)
    info["bandwidth_gbs"] = bandwidth
    return info


def table(results: dict) -> str:
    keys = ("tokens_per_s", "loss", "peak_gib", "ceiling_tokens_per_s", "fraction_of_ceiling", "wall_s")
    lines = ["| stage | status | " + " | ".join(keys) + " | note |", "|" + "---|" * (len(keys) + 3)]
    for name, row in results.items():
        cells = [str(row.get(k, "")) for k in keys]
        lines.append(f"| {name} | {row['status']} | " + " | ".join(cells) + f" | {row.get('reason', '')} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--smoke", action="store_true", help="tiny model, a few steps and tokens (CPU, seconds)")
    ap.add_argument("--out", default="gpu_check.json", help="JSON file for the results")
    ap.add_argument("--wheels", default=str(REPO / "benchmarks" / "wheels"), help="folder of wheels to install first")
    ap.add_argument("--bandwidth", type=float, default=None, help="GPU memory bandwidth in GB/s (default: by name)")
    ap.add_argument("--clients", type=int, nargs="+", default=None, help="server client counts (default 8 32)")
    args = ap.parse_args(argv)
    started = time.perf_counter()
    setup = install_wheels(Path(args.wheels))
    info = {**device_info(args.bandwidth), "wheels": setup, "smoke": args.smoke, "date": time.strftime("%Y-%m-%d")}
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model, corpus, sft = make_model(root, args.smoke)
        train_needs = ("datasets",)
        run_stage(results, "lora-pt", train_stage, "pt", model, corpus, root / "pt", args.smoke, needs=train_needs)
        run_stage(results, "lora-sft", train_stage, "sft", model, sft, root / "sft", args.smoke, needs=train_needs)
        if info["cuda"]:
            run_stage(results, "lora-pt-flash", train_stage, "pt", model, corpus, root / "flash", args.smoke,
                      needs=(*train_needs, "flash_attn"), attn="flash_attention_2")
        run_stage(results, "qlora-pt", train_stage, "pt", model, corpus, root / "qlora", args.smoke,
                  needs=(*train_needs, "bitsandbytes"), qlora=True)
        run_stage(results, "decode", decode_stage, model, args.smoke, info["bandwidth_gbs"])
        for n in args.clients or ([2] if args.smoke else [8, 32]):
            run_stage(results, f"serve-{n}", serve_stage, model, n, args.smoke, needs=("fastapi", "uvicorn"))
    add_ratios(results)
    report = {"info": info, "results": results, "total_s": round(time.perf_counter() - started, 1)}
    Path(args.out).write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(info, ensure_ascii=False))
    print(table(results))
    print(f"total {report['total_s']} s; wrote {args.out}")
    return 0


def add_ratios(results: dict) -> None:
    """QLoRA's memory saving and flash-attention's speed-up, against the bf16 LoRA run."""
    base = results.get("lora-pt", {})
    q, fa = results.get("qlora-pt", {}), results.get("lora-pt-flash", {})
    if base.get("peak_gib") and q.get("peak_gib"):
        q["memory_saving_vs_lora"] = round(base["peak_gib"] / q["peak_gib"], 2)
    if base.get("tokens_per_s") and fa.get("tokens_per_s"):
        fa["speedup_vs_sdpa"] = round(fa["tokens_per_s"] / base["tokens_per_s"], 2)


if __name__ == "__main__":
    sys.exit(main())

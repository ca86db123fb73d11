"""Pre-training data at scale: token shards (`zhllama data prepare`) against the old `datasets.map` path.

For each corpus size (GB of Chinese text: People's Daily paragraphs, repeated and shuffled with a
fixed seed) and each path, two child processes run while this one samples their memory (the whole
process tree, pool workers included, every 0.2 s from /proc/PID/status: VmRSS and RssAnon):

* **prepare**: `new` prepares token shards (`zhllama.data.shards.prepare_shards`, `--num-proc`
  processes); `old` runs the `datasets.map` path as it was in commit 35d0d94 (tokenize, group,
  `save_to_disk`), loaded from git history, with the same number of processes.
* **train**: opens the result (`new`: memory map, `old`: `load_from_disk`) and trains a tiny
  LLaMA (hidden 64, 2 layers, the tokenizer's vocabulary) for `--steps` steps of `--batch` blocks
  with Hugging Face Trainer.

Reported: tokens, bytes on disk per token, MB of text per second per process, wall time, peak RSS
and peak anonymous memory (summed over the process tree) while preparing and while training.

Usage: python benchmarks/data_scale.py [--sizes 0.1,0.5] [--num-proc 2] [--block 512] [--steps 20]
       [--paths new,old] [--work /tmp/data_scale]
Needs ../shared/data/tokenizers/chinese-llama2 (55,296 pieces) or --tokenizer DIR.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
OLD_COMMIT = "35d0d94"  # the last commit with the datasets.map path


# ---------------------------------------------------------------- the parent: corpora, children, memory

def write_corpus(path: Path, gigabytes: float, seed: int = 0) -> None:
    """People's Daily paragraphs, shuffled again for every pass, until the file holds ``gigabytes``."""
    from zhllama.data.builtin import people_daily_lines

    if path.is_file():
        return
    lines = list(people_daily_lines())
    rng, target, size = random.Random(seed), int(gigabytes * 1e9), 0
    tmp = path.with_suffix(".partial")
    with tmp.open("w", encoding="utf-8") as f:
        while size < target:
            rng.shuffle(lines)
            chunk = "\n".join(lines) + "\n"
            f.write(chunk)
            size += len(chunk.encode("utf-8"))
    tmp.rename(path)


def tree_memory(pid: int) -> tuple[int, int]:
    """(RSS, anonymous) bytes of a process and its descendants."""
    try:
        procs = [psutil.Process(pid)]
        procs += procs[0].children(recursive=True)
    except psutil.NoSuchProcess:
        return 0, 0
    rss = anon = 0
    for p in procs:
        try:
            for line in Path(f"/proc/{p.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    rss += int(line.split()[1]) * 1024
                elif line.startswith("RssAnon:"):
                    anon += int(line.split()[1]) * 1024
        except OSError:
            pass
    return rss, anon


def run_child(args: list[str], script: str = __file__) -> dict:
    """Run ``script`` (this one) as a child with ``args``; return its JSON result plus peak tree RSS/anon."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, script, *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            env=env, text=True)
    peak = {"rss": 0, "anon": 0}

    def sample():
        while proc.poll() is None:
            rss, anon = tree_memory(proc.pid)
            peak["rss"], peak["anon"] = max(peak["rss"], rss), max(peak["anon"], anon)
            time.sleep(0.2)

    t = threading.Thread(target=sample)
    t.start()
    out, _ = proc.communicate()
    t.join()
    if proc.returncode:
        raise SystemExit(f"child {args} failed ({proc.returncode})")
    return {**json.loads(out.strip().splitlines()[-1]), "peak_rss": peak["rss"], "peak_anon": peak["anon"]}


def disk_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


# ---------------------------------------------------------------- the children

def legacy_module():
    """The old ``zhllama.data.corpora`` (datasets.map path), read from git history."""
    import importlib.util

    src = subprocess.run(["git", "-C", str(ROOT), "show", f"{OLD_COMMIT}:src/zhllama/data/corpora.py"],
                         check=True, capture_output=True, text=True).stdout
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"zhllama_legacy_corpora_{os.getpid()}.py"
    path.write_text(src, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("zhllama.data.legacy_corpora", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def child_prepare(a) -> dict:
    from zhllama.tokenizer.load import load_tokenizer

    tok = load_tokenizer(a.tokenizer)
    t0 = time.perf_counter()
    if a.path == "new":
        from zhllama.data.shards import prepare_shards

        index = prepare_shards([a.corpus], tok, a.out, num_proc=a.num_proc, progress=False)
        tokens = index["tokens"]
    else:
        _, report = legacy_module().build_pt_dataset([a.corpus], tok, a.block, validation_split=0.01,
                                                    cache_dir=a.out, num_proc=a.num_proc, seed=42)
        tokens = report["tokens"]
    return {"seconds": time.perf_counter() - t0, "tokens": tokens}


def child_train(a) -> dict:
    from transformers import Trainer, TrainingArguments, default_data_collator

    from zhllama.model.load import load_causal_lm
    from zhllama.tokenizer.load import load_tokenizer

    tok = load_tokenizer(a.tokenizer)
    t0 = time.perf_counter()
    if a.path == "new":
        from zhllama.data.blocks import BlockCollator, open_blocks

        data, _ = open_blocks(a.out, tok, a.block, 0.01, 42)
        collator = BlockCollator()
    else:
        data, _ = legacy_module().build_pt_dataset([a.corpus], tok, a.block, validation_split=0.01, cache_dir=a.out,
                                                   num_proc=a.num_proc, seed=42)
        collator = default_data_collator
    opened = time.perf_counter() - t0
    model = load_causal_lm(a.model, "float32")
    args = TrainingArguments(output_dir=a.run, per_device_train_batch_size=a.batch, max_steps=a.steps, use_cpu=True,
                             report_to="none", save_strategy="no", logging_steps=a.steps, disable_tqdm=True, seed=42)
    Trainer(model=model, args=args, train_dataset=data["train"], data_collator=collator).train()
    return {"seconds": time.perf_counter() - t0, "open_seconds": opened}


# ---------------------------------------------------------------- the table

def tiny_model(tokenizer: str, work: Path) -> Path:
    from zhllama.model.init import InitConfig, init_model

    out = work / "model"
    if not (out / "config.json").is_file():
        init_model(InitConfig(tokenizer=tokenizer, out=str(out), hidden_size=64, layers=2, heads=4, kv_heads=2,
                              intermediate_size=128, max_position=1024, seed=0))
    return out


def measure(size: float, path: str, a, work: Path, model: Path) -> dict:
    corpus = work / f"corpus-{size}g.txt"
    write_corpus(corpus, size)
    out = work / f"{path}-{size}g"
    common = ["--path", path, "--corpus", str(corpus), "--out", str(out), "--tokenizer", a.tokenizer,
              "--block", str(a.block), "--num-proc", str(a.num_proc)]
    prep = run_child(["--child", "prepare", *common])
    train = run_child(["--child", "train", *common, "--model", str(model), "--run", str(work / "run"),
                       "--steps", str(a.steps), "--batch", str(a.batch)])
    mb = corpus.stat().st_size / 1e6
    disk = disk_bytes(out / "shards") if path == "new" else disk_bytes(next(out.glob("pt-*")))
    return {"size_gb": size, "path": path, "text_mb": mb, "tokens": prep["tokens"], "bytes_per_token": disk / prep["tokens"],
            "disk_mb": disk / 1e6, "prepare_s": prep["seconds"], "mb_s_per_proc": mb / prep["seconds"] / a.num_proc,
            "prepare_rss_gb": prep["peak_rss"] / 1e9, "prepare_anon_gb": prep["peak_anon"] / 1e9,
            "train_s": train["seconds"], "open_s": train["open_seconds"], "train_rss_gb": train["peak_rss"] / 1e9,
            "train_anon_gb": train["peak_anon"] / 1e9}


def print_table(rows: list[dict]) -> None:
    print("| text | path | tokens | bytes/token | on disk | prepare | MB/s per process | peak RSS / anon, "
          "preparing | open + 20 steps | peak RSS / anon, training |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        name = "token shards" if r["path"] == "new" else "datasets.map (old)"
        print(f"| {r['text_mb']:,.0f} MB | {name} | {r['tokens'] / 1e6:.1f} M | {r['bytes_per_token']:.2f} | "
              f"{r['disk_mb']:,.0f} MB | {r['prepare_s']:.0f} s | {r['mb_s_per_proc']:.2f} | "
              f"{r['prepare_rss_gb']:.2f} / {r['prepare_anon_gb']:.2f} GB | {r['train_s']:.0f} s (open {r['open_s']:.1f} s) | "
              f"{r['train_rss_gb']:.2f} / {r['train_anon_gb']:.2f} GB |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="0.1,0.5", help="GB of text, comma-separated")
    ap.add_argument("--paths", default="new,old")
    ap.add_argument("--num-proc", type=int, default=2)
    ap.add_argument("--block", type=int, default=512)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--tokenizer", default=str(SHARED / "tokenizers" / "chinese-llama2"))
    ap.add_argument("--work", default="/tmp/data_scale")
    ap.add_argument("--json", help="also write the rows here")
    # child-process arguments
    for name in ("--child", "--path", "--corpus", "--out", "--model", "--run"):
        ap.add_argument(name, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps((child_prepare if a.child == "prepare" else child_train)(a)))
        return
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    model = tiny_model(a.tokenizer, work)
    rows = []
    for size in (float(s) for s in a.sizes.split(",")):
        for path in a.paths.split(","):
            rows.append(measure(size, path, a, work, model))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
            if a.json:
                Path(a.json).write_text(json.dumps(rows, indent=1))
    print_table(rows)


if __name__ == "__main__":
    main()

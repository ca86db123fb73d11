"""Instruction and preference data at scale: memory and time of `train sft` / `train dpo` data preparation.

For each record count N, a JSONL file of N Alpaca records is generated from the shipped Chinese
Alpaca data (../shared/data/alpaca-zh, or the builtin task records without it), shuffled with a
fixed seed, each record's instruction carrying its index so no two are the same.  The preference
file has the same prompts, ``chosen`` = the record's output and ``rejected`` = another record's.

Each build runs in a child process (one per kind and N, cold cache) while this one samples the
child's memory every 0.2 s from /proc/PID/status over the whole process tree (VmRSS, RssAnon), as
benchmarks/data_scale.py does:

* **sft**: ``zhllama.data.instructions.build_sft_dataset`` (what ``train sft`` calls), template
  alpaca, max_length 512, validation split 0.01;
* **preference**: ``zhllama.data.preference.build_preference_dataset`` (``train rm/dpo/orpo``).

With ``--read-only`` (SFT) the child only reads the records into a ``datasets.Dataset``, the step whose
memory grew with the records before they were streamed; it runs at 1M records in minutes.

With ``--format json`` the same records are one ``.json`` array (read one record at a time since
zhllama.text.iter_json_array; before, ``json.load`` held the whole file).

Usage: python benchmarks/sft_scale.py [--records 10000,100000] [--kinds sft,preference]
       [--tokenizer DIR] [--work /tmp/sft_scale] [--num-proc 1] [--read-only] [--format jsonl|json]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from data_scale import SHARED, run_child  # noqa: E402  (the same child runner and memory sampler)


def base_records() -> list[dict]:
    """Alpaca records (instruction, input, output) from the shared Chinese Alpaca data, or the builtin tasks."""
    folder = SHARED / "alpaca-zh"
    out = []
    for f in sorted(folder.glob("*.json"))[:20]:
        out += [{k: r.get(k, "") for k in ("instruction", "input", "output")} for r in json.loads(f.read_text("utf-8"))]
    if not out:
        from zhllama.data.tasks import build_tasks

        out = [{k: r.get(k, "") for k in ("instruction", "input", "output")} for r in build_tasks()["train"]]
    return [r for r in out if r["instruction"].strip() and r["output"].strip()]


def write_records(path: Path, n: int, kind: str, seed: int = 0) -> None:
    """``n`` JSONL records, streamed to disk (the generator itself holds only the base records)."""
    if path.is_file():
        return
    base = base_records()
    rng = random.Random(seed)
    tmp = path.with_suffix(".partial")
    with tmp.open("w", encoding="utf-8") as f:
        for i in range(n):
            r = base[rng.randrange(len(base))]
            rec = {"instruction": f"{r['instruction']}（第{i}条）", "input": r["input"]}
            if kind == "sft":
                rec["output"] = r["output"]
            else:
                other = base[rng.randrange(len(base))]["output"]
                rec["chosen"], rec["rejected"] = r["output"], other if other != r["output"] else other + "。"
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    tmp.rename(path)


def as_json_array(jsonl: Path) -> Path:
    """The same records as one ``.json`` array (one record a line inside it), written line by line."""
    out = jsonl.with_suffix(".json")
    if not out.is_file():
        tmp = out.with_suffix(".partial")
        with jsonl.open(encoding="utf-8") as src, tmp.open("w", encoding="utf-8") as f:
            f.write("[\n")
            for i, line in enumerate(src):
                f.write(("" if i == 0 else ",\n") + line.rstrip("\n"))
            f.write("\n]\n")
        tmp.rename(out)
    return out


def child_build(a) -> dict:
    from zhllama.tokenizer.load import load_tokenizer

    tok = load_tokenizer(a.tokenizer)
    t0 = time.perf_counter()
    if a.read_only:
        return {"seconds": time.perf_counter() - t0 + read_records(a), "records": 0, "kept": 0, "train": 0}
    if a.kind == "sft":
        from zhllama.data.instructions import build_sft_dataset

        data, report = build_sft_dataset([a.file], tok, "alpaca", 512, validation_split=0.01, num_proc=a.num_proc,
                                         cache_dir=a.out)
    else:
        from zhllama.data.preference import build_preference_dataset

        data, report = build_preference_dataset([a.file], tok, "alpaca", 512, validation_split=0.01, cache_dir=a.out)
    return {"seconds": time.perf_counter() - t0, "records": report["records"], "kept": report["kept"],
            "train": len(data["train"])}


def read_records(a) -> float:
    """Only the first step of the SFT build: the records into a ``Dataset``, streamed (``write_arrow``) where the
    code has it, else as commit 795f597 did (``load_conversations`` then ``Dataset.from_dict``).  Returns seconds."""
    import tempfile

    import pyarrow as pa
    from datasets import Dataset

    from zhllama.data import instructions as ins

    t0 = time.perf_counter()
    if hasattr(ins, "write_arrow"):
        with tempfile.TemporaryDirectory(dir=a.work) as tmp:
            ins.write_arrow(({"messages": m} for m in ins.iter_converted([a.file], "instruction", ins.record_to_messages,
                                                                         False, {})),
                            Path(tmp) / "records.arrow", pa.schema([("messages", ins.messages_type())]))
    else:
        conversations, _ = ins.load_conversations([a.file])
        Dataset.from_dict({"messages": conversations})
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", default="10000,100000", help="record counts, comma-separated")
    ap.add_argument("--kinds", default="sft,preference")
    ap.add_argument("--num-proc", type=int, default=1, help="SFT encoding processes")
    ap.add_argument("--tokenizer", default=str(SHARED / "tokenizers" / "chinese-llama2"))
    ap.add_argument("--work", default="/tmp/sft_scale")
    ap.add_argument("--read-only", action="store_true", help="SFT: time only reading the records into a Dataset")
    ap.add_argument("--format", choices=("jsonl", "json"), default="jsonl",
                    help="the records as JSONL, or as one .json array")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--kind", help=argparse.SUPPRESS)
    ap.add_argument("--file", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child_build(a)))
        return
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for n in (int(x) for x in a.records.split(",")):
        for kind in a.kinds.split(","):
            file = work / f"{kind}-{n}.jsonl"
            write_records(file, n, kind)
            if a.format == "json":
                file = as_json_array(file)
            out = work / f"cache-{kind}-{n}-{time.time_ns()}"
            r = run_child(["--child", "build", "--kind", kind, "--file", str(file), "--out", str(out),
                           "--tokenizer", a.tokenizer, "--num-proc", str(a.num_proc), "--work", str(work),
                           *(["--read-only"] if a.read_only else [])], script=__file__)
            rows.append({"kind": kind, "n": n, "file_mb": file.stat().st_size / 1e6, **r})
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    print("| data | records | file | build | records/s | peak RSS | peak anon |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['kind']} | {r['n']:,} | {r['file_mb']:,.0f} MB | {r['seconds']:.0f} s | {r['n'] / r['seconds']:,.0f} | "
              f"{r['peak_rss'] / 1e6:,.0f} MB | {r['peak_anon'] / 1e6:,.0f} MB |")


if __name__ == "__main__":
    main()

"""Questions per second of ``zhllama eval mc`` (logit mode) on CPU, with and without batching.

A ~20M-parameter random LLaMA (``zhllama.model.init``: hidden 192, 4 layers) on the
Chinese-LLaMA-2 tokenizer (55,296 pieces) answers real CMMLU questions (the first --per-subject
questions of a few subjects) when ../shared/data is present; otherwise a tokenizer trained on the
built-in People's Daily text and synthetic questions in the CMMLU layout.  Times cover prompt
building, tokenization, the forward passes and writing predictions (the model load is excluded).

    python benchmarks/eval_speed.py [--per-subject 24] [--batch-sizes 1 8 16] [--shots 0 5] [--repeat 2]
"""

from __future__ import annotations

import argparse
import csv
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

from zhllama.eval.mc import McSettings, evaluate_mc, make_scorer
from zhllama.model.init import InitConfig, init_model
from zhllama.tokenizer.hf import write_hf_tokenizer

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SUBJECTS = ("agronomy", "chinese_history", "high_school_physics")


def tokenizer_dir(tmp: Path) -> tuple[Path, str]:
    sp = SHARED / "tokenizers" / "chinese-llama2" / "tokenizer.model"
    if sp.is_file():
        return write_hf_tokenizer(sp, tmp / "tok"), "Chinese-LLaMA-2 (55,296)"
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from sp_fixtures import train_llama_style_sp
    from zhllama.data.builtin import people_daily_lines

    model = train_llama_style_sp(list(people_daily_lines()[:5000]), tmp / "sp", 8000)
    return write_hf_tokenizer(model, tmp / "tok"), "built-in People's Daily BPE (8,000)"


def data_dir(tmp: Path, per_subject: int) -> tuple[Path, str]:
    """The first ``per_subject`` questions (and the 5 dev questions) of each subject."""
    out = tmp / "cmmlu"
    real = SHARED / "cmmlu"
    for split, n in (("dev", 5), ("test", per_subject)):
        (out / split).mkdir(parents=True)
        for key in SUBJECTS:
            if real.is_dir():
                rows = list(csv.reader((real / split / f"{key}.csv").read_text(encoding="utf-8").splitlines(True)))[: n + 1]
            else:
                from zhllama.data.builtin import people_daily_lines

                lines = [x[:40] for x in people_daily_lines()[:200]]
                rows = [["", "Question", "A", "B", "C", "D", "Answer"]]
                rows += [[i, lines[i], *(lines[i + j][:8] for j in range(1, 5)), "ABCD"[i % 4]] for i in range(n)]
            with open(out / split / f"{key}.csv", "w", encoding="utf-8", newline="") as f:
                csv.writer(f).writerows(rows)
    return out, "real CMMLU" if real.is_dir() else "synthetic"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--per-subject", type=int, default=24)
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 16])
    ap.add_argument("--shots", type=int, nargs="+", default=[0, 5])
    ap.add_argument("--repeat", type=int, default=2, help="runs per setting; the fastest is reported (shared CPUs)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        tok, tok_name = tokenizer_dir(tmp)
        model_dir = init_model(InitConfig(tokenizer=str(tok), out=str(tmp / "model"), hidden_size=192, layers=4,
                                          heads=4, max_position=2048))
        data, data_name = data_dir(tmp, args.per_subject)
        base = McSettings(task="cmmlu", split="test", shots=0, model=str(model_dir))
        scorer = make_scorer(base, device="cpu")
        params = sum(p.numel() for p in scorer.model.parameters())
        n = args.per_subject * len(SUBJECTS)
        print(f"model: {params / 1e6:.1f}M params, tokenizer {tok_name}; data: {data_name}, {n} questions "
              f"({', '.join(SUBJECTS)}); torch {torch.__version__}, {torch.get_num_threads()} threads, "
              f"{platform.processor() or platform.machine()}\n")
        print("| shots | batch size | mean prompt tokens | seconds | questions/s |")
        print("| ---: | ---: | ---: | ---: | ---: |")
        for shots in args.shots:
            for bs in args.batch_sizes:
                settings = McSettings(**{**base.__dict__, "shots": shots})
                secs = min(_timed_run(settings, data, tmp / f"out-{shots}-{bs}-{r}", bs, scorer) for r in range(args.repeat))
                tokens = _mean_prompt_tokens(scorer, data, shots)
                print(f"| {shots} | {bs} | {tokens:.0f} | {secs:.2f} | {n / secs:.1f} |", flush=True)


def _timed_run(settings, data: Path, out: Path, batch_size: int, scorer) -> float:
    start = time.perf_counter()
    evaluate_mc(settings, data, out, batch_size=batch_size, progress=False, scorer=scorer)
    return time.perf_counter() - start


def _mean_prompt_tokens(scorer, data: Path, shots: int) -> float:
    from zhllama.eval.mc import McItem
    from zhllama.eval.mc_data import load_task

    items = [McItem(s, q) for s in load_task("cmmlu", data, "test", shots) for q in s.questions]
    for it in items:
        scorer.prepare(it, shots)
    return sum(len(it.ids) for it in items) / len(items)


if __name__ == "__main__":
    main()

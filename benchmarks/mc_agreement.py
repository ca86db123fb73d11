"""How often ``zhllama eval mc --protocol P`` picks the same letter as the reference evaluator P.

The references are the independent re-implementations in tests/eval/test_eval_mc_protocols.py
(written from Chinese-LLaMA-Alpaca-2's, CMMLU's and C-Eval's own code).  The model: a random
LLaMA (hidden 64, 2 layers) on the LLaMA-2 tokenizer (no score ties: the fast tokenizer is exact)
or, with ``--tokenizer chinese-llama2``, the official Chinese-LLaMA-2 one (23,296 tied pieces: zhllama
loads it SentencePiece-exact), weights scaled x12 so that its letters depend on the prompt.  Data: the first --per-subject test
questions of every CMMLU subject in ../shared/data/cmmlu.  Also reported: how often the earlier
prompt (``--protocol zhllama``) agrees with Chinese-LLaMA-Alpaca-2's evaluator.

    python benchmarks/mc_agreement.py [--per-subject 2] [--shots 0 5] [--tokenizer llama2|chinese-llama2]
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
from pathlib import Path

import torch

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "eval"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def build_model(tmp: Path, tokenizer: str):
    from zhllama.model.init import InitConfig, init_model
    from zhllama.model.load import load_model
    from zhllama.tokenizer.hf import write_hf_tokenizer

    tok_dir = write_hf_tokenizer(SHARED / "tokenizers" / tokenizer / "tokenizer.model", tmp / "tok")
    model_dir = init_model(InitConfig(tokenizer=str(tok_dir), out=str(tmp / "model"), hidden_size=64, layers=2,
                                      heads=4, kv_heads=2, intermediate_size=128, max_position=4096, seed=0))
    model, tok = load_model(model_dir, device="cpu", dtype="float32")
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" not in name:
                p.mul_(12)
    return model, tok


def cmmlu_slice(tmp: Path, per_subject: int) -> tuple[Path, list[str]]:
    root = tmp / "cmmlu"
    keys = sorted(p.stem for p in (SHARED / "cmmlu" / "test").glob("*.csv"))
    for key in keys:
        for split, n in (("dev", 5), ("test", per_subject)):
            rows = list(csv.reader((SHARED / "cmmlu" / split / f"{key}.csv").open(encoding="utf-8")))[: n + 1]
            (root / split).mkdir(parents=True, exist_ok=True)
            with (root / split / f"{key}.csv").open("w", encoding="utf-8", newline="") as f:
                csv.writer(f).writerows(rows)
    return root, keys


def agree(a: dict, b: dict) -> str:
    same = sum(a[k] == b.get(k) for k in a)
    return f"{same}/{len(a)} ({100.0 * same / len(a):.1f}%)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-subject", type=int, default=2)
    ap.add_argument("--shots", type=int, nargs="+", default=[0, 5])
    ap.add_argument("--tokenizer", choices=["llama2", "chinese-llama2"], default="llama2",
                    help="a folder of ../shared/data/tokenizers")
    args = ap.parse_args()
    import test_eval_mc_protocols as T
    from zhllama.eval.subjects import CMMLU_SUBJECTS

    names = {k: v[0] for k, v in CMMLU_SUBJECTS.items()}
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        model, tok = build_model(tmp, args.tokenizer)
        print(f"tokenizer {args.tokenizer}: zhllama loads it as {type(tok).__name__}\n")
        sp = T.SP(SHARED / "tokenizers" / args.tokenizer / "tokenizer.model")
        data, keys = cmmlu_slice(tmp, args.per_subject)
        print("| shots | protocol | agreement with its reference | `zhllama` prompt vs ymcui's |")
        print("| ---: | --- | ---: | ---: |")
        for shots in args.shots:
            old = T.ours("zhllama", model, tok, "cmmlu", data, "test", shots, tmp / f"zhllama-{shots}")
            for protocol in ("ymcui", "ymcui-chat", "cmmlu"):
                ref = T.reference(protocol, model, sp, "cmmlu", data, "test", keys, shots, names)
                got = T.ours(protocol, model, tok, "cmmlu", data, "test", shots, tmp / f"{protocol}-{shots}")
                print(f"| {shots} | {protocol} | {agree(ref, got)} | {agree(ref, old) if protocol == 'ymcui' else ''} |",
                      flush=True)


if __name__ == "__main__":
    main()

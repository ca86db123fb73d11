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


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="model folder (Hugging Face format) or hub id")
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

    if str(args.model).endswith(".gguf"):
        raise ZhllamaError(f"{args.model}: GGUF files are not supported by eval ppl yet",
                           "evaluate the Hugging Face model folder the GGUF file was exported from")
    check_window(args.context, args.stride)
    texts = read_texts(args.text, args.text_field)
    model, tokenizer = load_model(args.model, lora=args.lora, dtype=args.dtype, device=args.device)
    context = int(model.config.max_position_embeddings) if args.context is None else args.context
    stride = max(1, context // 2) if args.stride is None else args.stride
    result = {"model": str(args.model), "lora": args.lora, "text": str(args.text),
              **perplexity(model, tokenizer, texts, context, stride, progress=sys.stderr.isatty())}
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

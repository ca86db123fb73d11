"""`zhllama chat` and `zhllama generate`."""

from __future__ import annotations

import argparse


def add_engine_args(p: argparse.ArgumentParser) -> None:
    """Options that choose and load the model (shared with serve/webui/eval)."""
    p.add_argument("--model", required=True, help="model folder (Hugging Face format) or hub id")
    p.add_argument("--lora", default=None, help="a LoRA adapter folder applied on top of --model (not merged)")
    p.add_argument("--template", default=None,
                   help="chat template: alpaca, llama2-zh, llama2, chatml, none (default: the one recorded in the "
                        "model/adapter folder's zhllama.json, else none)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps")
    p.add_argument("--dtype", default="auto", help="auto (bf16/fp16 on GPU, fp32 on CPU), float32, bfloat16, float16")
    p.add_argument("--context-length", type=int, default=None,
                   help="tokens of context (default: the model's max_position_embeddings, times the RoPE factor)")
    p.add_argument("--rope-scaling", default=None, metavar="KIND:FACTOR",
                   help="extend the context with RoPE scaling: linear:F (position interpolation), ntk:F (dynamic "
                        "NTK), yarn:F; e.g. ntk:2 runs a 4K model at 8K")
    p.add_argument("--draft-model", default=None,
                   help="a small model with the same tokenizer for speculative sampling (used for one request at "
                        "a time: chat, generate --batch-size 1)")
    p.add_argument("--draft-tokens", type=int, default=4, help="tokens the draft proposes per step (default 4)")


def add_sampling_args(p: argparse.ArgumentParser) -> None:
    from .sampling import SamplingParams

    d = SamplingParams()
    p.add_argument("--max-new-tokens", "--max-tokens", dest="max_new_tokens", type=int, default=d.max_new_tokens,
                   help=f"most tokens to generate per reply (default {d.max_new_tokens})")
    p.add_argument("--temperature", type=float, default=d.temperature, help=f"0 = greedy (default {d.temperature})")
    p.add_argument("--top-p", type=float, default=d.top_p, help=f"nucleus sampling (default {d.top_p})")
    p.add_argument("--top-k", type=int, default=d.top_k, help=f"0 = off (default {d.top_k})")
    p.add_argument("--repetition-penalty", type=float, default=d.repetition_penalty,
                   help=f"1.0 = off (default {d.repetition_penalty})")
    p.add_argument("--stop", action="append", default=[], help="a stop string (repeatable); it is not included in the output")
    p.add_argument("--seed", type=int, default=None, help="random seed for reproducible sampling")


def sampling_from_args(args: argparse.Namespace):
    from .sampling import SamplingParams

    return SamplingParams(max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p,
                          top_k=args.top_k, repetition_penalty=args.repetition_penalty, stop=tuple(args.stop),
                          seed=args.seed).validate()


def load_engine(args: argparse.Namespace):
    from .engine import Engine

    return Engine.load(args.model, lora=args.lora, template=args.template, device=args.device, dtype=args.dtype,
                       context_length=args.context_length, rope_scaling=args.rope_scaling,
                       draft_model=args.draft_model, draft_tokens=args.draft_tokens)


def register(sub: argparse._SubParsersAction) -> None:
    chat = sub.add_parser(
        "chat", help="interactive, streaming, multi-turn chat in the terminal",
        description="Chat with a model in the terminal: replies stream as they are generated, the conversation "
                    "is rendered with the training chat template, and the oldest turns are dropped when the "
                    "context is full.  Works with a pipe too (one message per line).  Type /help for commands "
                    "(/clear, /exit, /system TEXT, /temperature 0.2, /max_tokens 128, ...).")
    add_engine_args(chat)
    chat.add_argument("--system", default=None, help="system prompt (default: the template's)")
    add_sampling_args(chat)
    chat.set_defaults(func=_chat)

    gen = sub.add_parser(
        "generate", help="batch generation: a file of prompts in, JSONL results out (resumable)",
        description="Answer every prompt of --input (.txt: one prompt per line; .jsonl: a 'prompt' or 'messages' "
                    "field per line, optional 'id') in batches, writing one JSON line per input to --output "
                    "(prompt, output, token counts, finish reason).  Each line is flushed when written; running "
                    "again with the same --output skips the inputs already answered.")
    add_engine_args(gen)
    gen.add_argument("--input", required=True, help=".txt or .jsonl file of prompts")
    gen.add_argument("--output", required=True, help="JSONL results file (appended to; resumed when it exists)")
    gen.add_argument("--batch-size", type=int, default=8, help="prompts decoded together (default 8)")
    gen.add_argument("--limit", type=int, default=None, help="stop after answering this many new inputs")
    gen.add_argument("--system", default=None, help="system prompt for every input (default: the template's)")
    gen.add_argument("--overwrite", action="store_true", help="start a fresh --output instead of resuming")
    add_sampling_args(gen)
    gen.set_defaults(func=_generate)


def _chat(args: argparse.Namespace) -> int:
    import sys

    from .chat import ChatSession, run_chat

    params = sampling_from_args(args)
    engine = load_engine(args)
    session = ChatSession(engine, params, system=args.system)
    return run_chat(session, sys.stdin, sys.stdout, sys.stderr, interactive=sys.stdin.isatty())


def _generate(args: argparse.Namespace) -> int:
    from ..errors import ZhllamaError, require_file
    from .generate import read_inputs, run_generate

    items = read_inputs(require_file(args.input, "input file"))
    if args.batch_size < 1:
        raise ZhllamaError(f"--batch-size {args.batch_size} must be at least 1", "e.g. --batch-size 8")
    params = sampling_from_args(args)
    engine = load_engine(args)
    summary = run_generate(engine, items, args.output, params, batch_size=args.batch_size, limit=args.limit,
                           system=args.system, overwrite=args.overwrite)
    print(summary)
    return 0

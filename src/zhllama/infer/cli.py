"""`zhllama chat` and `zhllama generate`; the options come from ``ChatConfig`` and ``GenerateConfig``."""

from __future__ import annotations

import argparse

from ..config import add_dataclass_args, from_args


def register(sub: argparse._SubParsersAction) -> None:
    from .config import ChatConfig, GenerateConfig

    chat = sub.add_parser(
        "chat", help="interactive, streaming, multi-turn chat in the terminal",
        description="Chat with a model in the terminal: replies stream as they are generated, the conversation "
                    "is rendered with the training chat template, and the oldest turns are dropped when the "
                    "context is full.  Works with a pipe too (one message per line).  Type /help for commands "
                    "(/clear, /exit, /system TEXT, /temperature 0.2, /max_tokens 128, ...).")
    add_dataclass_args(chat, ChatConfig, overrides=False)
    chat.set_defaults(func=_chat)

    gen = sub.add_parser(
        "generate", help="batch generation: a file of prompts in, JSONL results out (resumable)",
        description="Answer every prompt of --input (.txt: one prompt per line; .jsonl: a 'prompt' or 'messages' "
                    "field per line, optional 'id') in batches, writing one JSON line per input to --output "
                    "(prompt, output, token counts, finish reason).  Each line is flushed when written; running "
                    "again with the same --output skips the inputs already answered.")
    add_dataclass_args(gen, GenerateConfig, overrides=False)
    gen.set_defaults(func=_generate)


def _chat(args: argparse.Namespace) -> int:
    import sys

    from .chat import ChatSession, run_chat
    from .config import ChatConfig

    cfg = from_args(ChatConfig, args)
    params = cfg.sampling.validate()
    session = ChatSession(cfg.backend.load(cfg.engine, threads=cfg.threads), params, system=cfg.system)
    return run_chat(session, sys.stdin, sys.stdout, sys.stderr, interactive=sys.stdin.isatty())


def _generate(args: argparse.Namespace) -> int:
    from ..checks import check_output_path
    from ..errors import require_file
    from .config import GenerateConfig
    from .generate import read_inputs, run_generate

    cfg = from_args(GenerateConfig, args)
    items = read_inputs(require_file(cfg.input, "input file"), cfg.encoding)
    check_output_path(cfg.output, "file", "--output")
    params = cfg.sampling.validate()
    engine = cfg.backend.load(cfg.engine, threads=cfg.threads, parallel=cfg.batch_size)
    summary = run_generate(engine, items, cfg.output, params, batch_size=cfg.batch_size, limit=cfg.limit,
                           system=cfg.system, overwrite=cfg.overwrite)
    print(summary)
    return 0

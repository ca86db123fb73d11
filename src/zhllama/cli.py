"""The one ``zhllama`` command.

Each stage package owns its sub-commands in ``zhllama/<stage>/cli.py`` through a
``register(subparsers)`` function that adds parsers and sets ``func`` (a callable taking the parsed
``argparse.Namespace`` and returning an exit code or None).  Stage modules import their heavy
dependencies (torch, transformers) inside the handlers so that ``zhllama --help`` stays instant.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from . import __version__
from .errors import ZhllamaError

# Order here is the order in `zhllama --help`; it follows the pipeline.
STAGE_MODULES = [
    "zhllama.tokenizer.cli",  # tokenizer train | merge | stats
    "zhllama.model.cli",  # model init
    "zhllama.train.cli",  # train pt | sft, merge
    "zhllama.infer.cli",  # chat, generate
    "zhllama.serve.cli",  # serve, webui
    "zhllama.eval.cli",  # eval ppl | mc | compare
    "zhllama.export.cli",  # export gguf
    "zhllama.pipeline_cli",  # pipeline, demo
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zhllama",
        description="Turn an English-centric LLaMA-family model into a Chinese one, and put it to work.",
    )
    parser.add_argument("--version", action="version", version=f"zhllama {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in STAGE_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0 if args.command is None else 2
    try:
        code = args.func(args)
    except ZhllamaError as e:
        print(f"zhllama: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("zhllama: interrupted", file=sys.stderr)
        return 130
    return int(code or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

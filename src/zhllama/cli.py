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
from pathlib import Path

from . import __version__
from .errors import ZhllamaError
from .logs import command_logging, log_dir

# Order here is the order in `zhllama --help`; it follows the pipeline.
STAGE_MODULES = [
    "zhllama.tokenizer.cli",  # tokenizer train | merge | stats
    "zhllama.model.cli",  # model init
    "zhllama.data.cli",  # data prepare
    "zhllama.train.cli",  # train pt | sft, merge
    "zhllama.align.cli",  # train rm | dpo | ppo (added to `zhllama train`, which comes first)
    "zhllama.infer.cli",  # chat, generate
    "zhllama.serve.cli",  # serve, webui
    "zhllama.eval.cli",  # eval ppl | mc | compare
    "zhllama.export.cli",  # export gguf
    "zhllama.pipeline.cli",  # pipeline, demo
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zhllama",
        description="Turn an English-centric LLaMA-family model into a Chinese one, and put it to work.",
        epilog="Each command shows its own progress and results; the libraries' logs, warnings and per-step "
               "training records go to OUT/zhllama.log in the command's output folder when it finishes "
               f"(commands without one, and failed ones: {_log_dir_shown()}, or $ZHLLAMA_LOG_DIR). "
               "`zhllama --verbose COMMAND ...` shows them on the terminal instead.",
    )
    parser.add_argument("--version", action="version", version=f"zhllama {__version__}")
    parser.add_argument("-v", "--verbose", dest="show_library_logs", action="store_true",
                        help="show the libraries' logs, warnings and progress bars on the terminal "
                             "(give it before the command)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in STAGE_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def output_folder(args: argparse.Namespace) -> str | None:
    """The command's output folder, which receives its zhllama.log (when it is a folder at the end)."""
    for name in ("output_dir", "out", "run_dir"):
        if getattr(args, name, None):
            return getattr(args, name)
    return None


def _log_dir_shown() -> str:
    home = str(Path.home())
    where = str(log_dir())
    return "~" + where[len(home):] if where.startswith(home) else where


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0 if args.command is None else 2
    try:
        with command_logging(args.command, output_folder(args), verbose=args.show_library_logs):
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

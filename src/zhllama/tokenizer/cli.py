"""``zhllama tokenizer train | merge | stats``; the options come from each command's dataclass."""

from __future__ import annotations

import sys
from dataclasses import asdict

from ..config import add_dataclass_args, from_args


def register(sub) -> None:
    p = sub.add_parser("tokenizer", help="train a Chinese tokenizer, merge it into LLaMA's or Llama-3's/Qwen2's, measure tokenizers",
                       description="The vocabulary-extension stage: train, merge, stats.")
    tsub = p.add_subparsers(dest="tokenizer_command", metavar="COMMAND")
    p.set_defaults(func=lambda a: _print_help(p))
    _add_train(tsub)
    _add_merge(tsub)
    _add_stats(tsub)


def _print_help(parser) -> int:
    parser.print_help()
    return 2


def _add_train(tsub) -> None:
    from .train import TokenizerTrainConfig

    p = tsub.add_parser("train", help="train a SentencePiece model (or a byte-level BPE) on Chinese text",
                        description="Train a SentencePiece model with LLaMA-compatible settings (byte fallback, digits "
                                    "split, identity normalisation, dummy prefix, <unk>/<s>/</s> = 0/1/2). Writes "
                                    "tokenizer.model, tokenizer.vocab and Hugging Face files into --out. --type byte-bpe: "
                                    "a byte-level BPE (tokenizer.json) on the pre-tokenizer of --base, for Llama-3/Qwen2.")
    add_dataclass_args(p, TokenizerTrainConfig, overrides=False)
    p.set_defaults(func=_run_train)


def _run_train(a) -> int:
    from .train import TokenizerTrainConfig, train_tokenizer

    print(train_tokenizer(from_args(TokenizerTrainConfig, a)))
    return 0


def _add_merge(tsub) -> None:
    from .merge import TokenizerMergeConfig

    p = tsub.add_parser("merge", help="merge Chinese pieces into a LLaMA or byte-level BPE (Llama-3, Qwen2) tokenizer",
                        description="Append the pieces of --add model(s) to --base. extend (default): only Chinese "
                                    "pieces, with distinct scores, so non-Chinese text tokenizes exactly as the base "
                                    "and the Hugging Face files match SentencePiece. chinese-llama: every missing piece, "
                                    "score 0, as the first Chinese-LLaMA did. Writes tokenizer.model, Hugging Face "
                                    "files and merge_report.json into --out. A byte-level BPE base (tokenizer.json of "
                                    "Llama-3, Qwen2): Chinese tokens after its last id, merges ranked after its own, "
                                    "every other id and setting unchanged.")
    add_dataclass_args(p, TokenizerMergeConfig, overrides=False)
    p.set_defaults(func=_run_merge)


def _run_merge(a) -> int:
    from .backend import merge_tokenizers
    from .merge import TokenizerMergeConfig

    cfg = from_args(TokenizerMergeConfig, a)
    s = merge_tokenizers(**asdict(cfg)).summary()
    print(f"{cfg.out}: {s['total_pieces']:,} pieces ({s['base_pieces']:,} base + {s['added_pieces']:,} added"
          + (f", <pad> = {s['pad_id']}" if s["pad_id"] is not None else "") + ")")
    return 0


def _add_stats(tsub) -> None:
    from .stats import TokenizerStatsConfig

    p = tsub.add_parser("stats", help="compare tokenizers on text files",
                        description="Per tokenizer and text file: vocabulary size, Chinese characters per token, "
                                    "tokens per character, bytes per token, unknown-token rate, exact round-trip rate.")
    add_dataclass_args(p, TokenizerStatsConfig, overrides=False)
    p.set_defaults(func=_run_stats)


def _run_stats(a) -> int:
    from .stats import TokenizerStatsConfig, check_plot_path, collect_stats, format_table, plot_stats, rows_json

    cfg = from_args(TokenizerStatsConfig, a)
    if cfg.plot:
        check_plot_path(cfg.plot)  # before minutes of measuring, not after
    rows = collect_stats(cfg.tokenizer, cfg.text, cfg.text_field, progress=not cfg.json)
    print(rows_json(rows) if cfg.json else format_table(rows))
    if cfg.plot:
        print(f"plot: {plot_stats(rows, cfg.plot)}", file=sys.stderr)
    return 0

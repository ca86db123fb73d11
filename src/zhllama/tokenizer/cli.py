"""``zhllama tokenizer train | merge | stats``."""

from __future__ import annotations

import argparse
import sys


def register(sub) -> None:
    p = sub.add_parser("tokenizer", help="train a Chinese SentencePiece model, merge it into LLaMA's, measure tokenizers",
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
    from .train import MODEL_TYPES

    p = tsub.add_parser("train", help="train a SentencePiece model on Chinese text",
                        description="Train a SentencePiece model with LLaMA-compatible settings (byte fallback, digits "
                                    "split, identity normalisation, dummy prefix, <unk>/<s>/</s> = 0/1/2). Writes "
                                    "tokenizer.model, tokenizer.vocab and Hugging Face files into --out.",
                        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--corpus", nargs="+", required=True, metavar="FILE",
                   help=".txt (one document per line), .jsonl (a text field) or Alpaca .json; .gz accepted")
    p.add_argument("--vocab-size", type=int, default=20000, help="number of pieces")
    p.add_argument("--model-type", choices=MODEL_TYPES, default="bpe",
                   help="bpe pieces can all be reached once merged into LLaMA's BPE tokenizer")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--character-coverage", type=float, default=0.9995,
                   help="share of characters covered by pieces; the rarest fall back to bytes")
    p.add_argument("--max-sentence-length", type=int, default=16384, help="lines longer than this many bytes are skipped")
    p.add_argument("--input-sentence-size", type=int, default=0,
                   help="sample this many lines from a very large corpus (0: use all)")
    p.add_argument("--no-shuffle", dest="shuffle", action="store_false", help="take the first lines instead of a random sample")
    p.add_argument("--threads", type=int, default=2, help="trainer threads")
    p.add_argument("--text-field", default="text", help="JSON field holding the text in .jsonl/.json files")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.add_argument("--verbose", action="store_true", help="show SentencePiece's own training log")
    p.set_defaults(func=_run_train)


def _run_train(a) -> int:
    from .train import TrainConfig, train_tokenizer

    cfg = TrainConfig(corpus=a.corpus, out=a.out, vocab_size=a.vocab_size, model_type=a.model_type,
                      character_coverage=a.character_coverage, max_sentence_length=a.max_sentence_length,
                      input_sentence_size=a.input_sentence_size, shuffle=a.shuffle, threads=a.threads,
                      text_field=a.text_field, overwrite=a.overwrite, verbose=a.verbose)
    out = train_tokenizer(cfg)
    print(out)
    return 0


def _add_merge(tsub) -> None:
    from .merge import MODES, PLACEMENTS

    p = tsub.add_parser("merge", help="merge Chinese pieces into a LLaMA tokenizer",
                        description="Append the pieces of --add model(s) to --base. extend (default): only Chinese "
                                    "pieces, with distinct scores, so non-Chinese text tokenizes exactly as the base "
                                    "and the Hugging Face files match SentencePiece. chinese-llama: every missing piece, "
                                    "score 0, as the first Chinese-LLaMA did. Writes tokenizer.model, Hugging Face "
                                    "files and merge_report.json into --out.",
                        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--base", required=True, help="a LLaMA tokenizer.model or a Hugging Face folder holding one")
    p.add_argument("--add", action="append", required=True, metavar="SP_MODEL",
                   help="SentencePiece model (or folder with tokenizer.model) to merge in; repeat for several")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--mode", choices=MODES, default="extend", help="merge rule")
    p.add_argument("--placement", choices=PLACEMENTS, default="above",
                   help="extend mode: new pieces score above or below the base's pieces")
    p.add_argument("--pad-token", action="store_true", help="add a <pad> piece right after the base's pieces")
    p.add_argument("--max-pieces", type=int, default=None, help="cap the merged vocabulary (e.g. 55296)")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.set_defaults(func=_run_merge)


def _run_merge(a) -> int:
    from .merge import merge_tokenizers

    r = merge_tokenizers(a.base, a.add, a.out, mode=a.mode, placement=a.placement, pad_token=a.pad_token,
                         max_pieces=a.max_pieces, overwrite=a.overwrite)
    s = r.summary()
    print(f"{a.out}: {s['total_pieces']:,} pieces ({s['base_pieces']:,} base + {s['added_pieces']:,} added"
          + (f", <pad> = {s['pad_id']}" if s["pad_id"] is not None else "") + ")")
    return 0


def _add_stats(tsub) -> None:
    p = tsub.add_parser("stats", help="compare tokenizers on text files",
                        description="Per tokenizer and text file: vocabulary size, Chinese characters per token, "
                                    "tokens per character, bytes per token, unknown-token rate, exact round-trip rate.")
    p.add_argument("--tokenizer", action="append", required=True, metavar="T",
                   help="a .model file or a tokenizer folder; repeat to compare")
    p.add_argument("--text", nargs="+", required=True, metavar="FILE", help=".txt/.jsonl/.json text files (.gz accepted)")
    p.add_argument("--text-field", default="text", help="JSON field holding the text")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--plot", metavar="PNG", help="also save a bar chart")
    p.set_defaults(func=_run_stats)


def _run_stats(a) -> int:
    from .stats import check_plot_path, collect_stats, format_table, plot_stats, rows_json

    if a.plot:
        check_plot_path(a.plot)  # before minutes of measuring, not after
    rows = collect_stats(a.tokenizer, a.text, a.text_field, progress=not a.json)
    print(rows_json(rows) if a.json else format_table(rows))
    if a.plot:
        print(f"plot: {plot_stats(rows, a.plot)}", file=sys.stderr)
    return 0

"""`zhllama data prepare`; the options come from ``PrepareConfig``."""

from __future__ import annotations

import argparse

from ..config import add_dataclass_args, from_args


def register(sub: argparse._SubParsersAction) -> None:
    from .prepare import PrepareConfig

    p = sub.add_parser("data", help="prepare pre-training data (token shards)")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    prep = dsub.add_parser("prepare", help="tokenize corpus files once into compact token shards",
                           description="Tokenize corpus files into token shards (uint16 for a vocabulary under "
                                       "65,536, else uint32) with document boundaries and an index.json holding the "
                                       "tokenizer's fingerprint, per-source counts, mixing weights and settings. "
                                       "Parallel over shards (--num-proc), resumable after a kill (finished shards "
                                       "are kept), byte-identical for the same inputs. Train on it with "
                                       "`zhllama train pt --data OUT`.")
    add_dataclass_args(prep, PrepareConfig, overrides=False)
    prep.set_defaults(func=_prepare)


def _prepare(args: argparse.Namespace) -> int:
    from .prepare import PrepareConfig, prepare

    index = prepare(from_args(PrepareConfig, args))
    state = "already prepared" if index["cached"] else "wrote"
    skipped = f", {index['skipped_lines']:,} bad lines and {index['skipped_files']} files skipped" if (
        index["skipped_lines"] or index["skipped_files"]) else ""
    print(f"{state} {args.out}: {index['documents']:,} documents, {index['tokens']:,} tokens ({index['dtype']}) "
          f"in {len(index['shards'])} shards from {len(index['sources'])} sources{skipped}")
    return 0

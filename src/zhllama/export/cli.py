"""``zhllama export gguf``; the options come from ``GgufConfig``."""

from __future__ import annotations

import argparse
import sys

from ..config import add_dataclass_args, from_args


def register(sub: argparse._SubParsersAction) -> None:
    from .config import GgufConfig

    p = sub.add_parser("export", help="export a model for other runtimes (GGUF for llama.cpp)")
    esub = p.add_subparsers(dest="export_command", metavar="FORMAT", required=True)
    g = esub.add_parser("gguf", help="write a model folder (LLaMA, Qwen2, Qwen3) as a (quantized) GGUF file for llama.cpp",
                        description="Convert a Hugging Face model folder of a model family (llama, qwen2, qwen3; e.g. "
                                    "the output of zhllama merge) into one GGUF file that llama.cpp, llama-cpp-python, "
                                    "Ollama and LM Studio load: the family's hyper-parameters, the vocabulary "
                                    "(SentencePiece or byte-level BPE), the chat template, and the weights as f32, f16, "
                                    "bf16, or quantized to q8_0 / q4_0. Tensors are streamed one at a time.")
    add_dataclass_args(g, GgufConfig, overrides=False)
    g.set_defaults(func=_gguf)


def _gguf(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from .config import GgufConfig
    from .gguf import export_gguf

    cfg = from_args(GgufConfig, args)
    out = export_gguf(**asdict(cfg), progress=sys.stderr.isatty())
    print(f"wrote {out} ({out.stat().st_size / 2**20:.1f} MiB, {cfg.outtype})")
    return 0

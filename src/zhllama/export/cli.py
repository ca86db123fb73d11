"""``zhllama export gguf``."""

from __future__ import annotations

import argparse
import sys

OUTTYPES = ("f32", "f16", "bf16", "q8_0", "q4_0")  # kept in step with zhllama.export.tensors.OUTTYPES


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a model for other runtimes (GGUF for llama.cpp)")
    esub = p.add_subparsers(dest="export_command", metavar="FORMAT", required=True)
    g = esub.add_parser("gguf", help="write a LLaMA model folder as a (quantized) GGUF file for llama.cpp",
                        description="Convert a Hugging Face LLaMA model folder (e.g. the output of zhllama merge) "
                                    "into one GGUF file that llama.cpp, llama-cpp-python, Ollama and LM Studio "
                                    "load: LLaMA hyper-parameters, the SentencePiece vocabulary from "
                                    "tokenizer.model, the chat template, and the weights as f32, f16, bf16, or "
                                    "quantized to q8_0 / q4_0. Tensors are streamed one at a time.")
    g.add_argument("--model", required=True, help="model folder (config.json, *.safetensors, tokenizer.model)")
    g.add_argument("--out", required=True, help="GGUF file to write, e.g. zh-alpaca-q8_0.gguf")
    g.add_argument("--outtype", default="f16", choices=OUTTYPES,
                   help="weight type: f32 (exact), f16 (default), bf16, q8_0 (8.5 bits/weight), q4_0 (4.5 bits/weight)")
    g.add_argument("--name", default=None, help="general.name stored in the file (default: the folder name)")
    g.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    g.set_defaults(func=_gguf)


def _gguf(args: argparse.Namespace) -> int:
    from .gguf import export_gguf

    out = export_gguf(args.model, args.out, outtype=args.outtype, name=args.name, overwrite=args.overwrite,
                      progress=sys.stderr.isatty())
    print(f"wrote {out} ({out.stat().st_size / 2**20:.1f} MiB, {args.outtype})")
    return 0

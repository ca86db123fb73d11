"""GGUF export for llama.cpp: ``zhllama export gguf``."""

from .gguf import export_gguf
from .tensors import OUTTYPES

__all__ = ["OUTTYPES", "export_gguf"]

"""The options of ``zhllama chat`` and ``zhllama generate`` (and the model options serve/webui share)."""

from __future__ import annotations

from dataclasses import dataclass, fields

from ..config import option
from ..model.config import LoadConfig
from ..rope_scaling import RopeScaling
from .backend import BackendConfig
from .sampling import SamplingParams


@dataclass(kw_only=True)
class EngineConfig(LoadConfig):
    """Which model to load and how (:class:`~zhllama.model.config.LoadConfig`), and what generation adds:
    ``cfg.load()`` is ``Engine.load`` with these fields."""

    model: str = option("model folder (Hugging Face format) or hub id; with --engine llamacpp a .gguf file or a model "
                        "folder")
    template: str | None = option("chat template: alpaca, llama2-zh, llama2, chatml, llama3, qwen, native, none "
                                  "(default: the one recorded in the adapter/model folder's zhllama.json, else the model "
                                  "family's, else none)", None)
    context_length: int | None = option("tokens of context (default: the model's max_position_embeddings, times the "
                                        "RoPE factor)", None, low=2)
    rope_scaling: RopeScaling | None = option("extend the context with RoPE scaling: linear:F (position interpolation), "
                                              "ntk:F (dynamic NTK), yarn:F; e.g. ntk:2 runs a 4K model at 8K", None,
                                              metavar="KIND:FACTOR")
    draft_model: str | None = option("a small model with the same tokenizer for speculative sampling (used for one "
                                     "request at a time: chat, generate --batch-size 1)", None)
    draft_tokens: int = option("tokens the draft proposes per step", 4, low=1)

    def load(self):
        from .engine import Engine

        options = {f.name: getattr(self, f.name) for f in fields(self)}  # shallow: rope_scaling stays a value
        return Engine.load(options.pop("model"), **options)


THREADS_HELP = "CPU threads (torch's, or llama.cpp's with --engine llamacpp; default: one per core)"


@dataclass(kw_only=True)
class ChatConfig:
    engine: EngineConfig
    system: str | None = option("system prompt (default: the template's)", None)
    sampling: SamplingParams = option("how replies are sampled", factory=SamplingParams)
    threads: int | None = option(THREADS_HELP, None, low=1)
    backend: BackendConfig = option("which engine generates (--engine zhllama|vllm|llamacpp)", factory=BackendConfig)


@dataclass(kw_only=True)
class GenerateConfig:
    engine: EngineConfig
    input: str = option(".txt or .jsonl file of prompts")
    encoding: str = option("text encoding of --input (gbk and gb18030 are common for Chinese files)", "utf-8")
    output: str = option("JSONL results file (appended to; resumed when it exists)")
    batch_size: int = option("prompts decoded together", 8, low=1)
    limit: int | None = option("stop after answering this many new inputs", None, low=1)
    system: str | None = option("system prompt for every input (default: the template's)", None)
    overwrite: bool = option("start a fresh --output instead of resuming", False)
    sampling: SamplingParams = option("how replies are sampled", factory=SamplingParams)
    threads: int | None = option(THREADS_HELP, None, low=1)
    backend: BackendConfig = option("which engine generates (--engine zhllama|vllm|llamacpp)", factory=BackendConfig)

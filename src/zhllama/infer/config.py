"""The options of ``zhllama chat`` and ``zhllama generate`` (and the model options serve/webui share)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

from ..config import option
from .backend import BackendConfig
from .sampling import SamplingParams


@dataclass(kw_only=True)
class EngineConfig:
    """Which model to load and how: ``Engine.load(**asdict(cfg))``."""

    model: str = option("model folder (Hugging Face format) or hub id")
    lora: str | None = option("a LoRA adapter folder applied on top of --model (not merged)", None)
    template: str | None = option("chat template: alpaca, llama2-zh, llama2, chatml, llama3, qwen, native, none "
                                  "(default: the one recorded in the adapter/model folder's zhllama.json, else the model "
                                  "family's, else none)", None)
    device: str = option("auto, cpu, cuda, cuda:1, mps", "auto")
    dtype: str = option("auto (bf16/fp16 on GPU, fp32 on CPU), float32, bfloat16, float16", "auto")
    context_length: int | None = option("tokens of context (default: the model's max_position_embeddings, times the "
                                        "RoPE factor)", None, low=2)
    rope_scaling: str | None = option("extend the context with RoPE scaling: linear:F (position interpolation), ntk:F "
                                      "(dynamic NTK), yarn:F; e.g. ntk:2 runs a 4K model at 8K", None,
                                      metavar="KIND:FACTOR")
    draft_model: str | None = option("a small model with the same tokenizer for speculative sampling (used for one "
                                     "request at a time: chat, generate --batch-size 1)", None)
    draft_tokens: int = option("tokens the draft proposes per step", 4, low=1)
    quantize: Literal["8bit", "4bit"] | None = option("load the linear layers quantized with bitsandbytes (LLM.int8 or "
                                                      "NF4); needs bitsandbytes", None)
    attn: Literal["sdpa", "eager", "flash_attention_2"] | None = option(
        "attention kernel (default: transformers' choice, sdpa); flash_attention_2 needs flash-attn and a CUDA GPU", None)

    def load(self):
        from .engine import Engine

        fields = asdict(self)
        return Engine.load(fields.pop("model"), **fields)


@dataclass(kw_only=True)
class ChatConfig:
    engine: EngineConfig
    system: str | None = option("system prompt (default: the template's)", None)
    sampling: SamplingParams = option("how replies are sampled", factory=SamplingParams)


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
    backend: BackendConfig = option("which engine generates (--engine zhllama|vllm)", factory=BackendConfig)

"""The options of ``zhllama serve`` and ``zhllama webui``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..config import option
from ..infer.backend import BackendConfig
from ..infer.config import EngineConfig
from ..infer.sampling import SAMPLING_DEFAULTS


@dataclass(kw_only=True)
class ServedModel:
    """What serve and webui share: the model and its engine, the CPU threads, the interface to listen on."""

    engine: EngineConfig
    threads: int | None = option("CPU threads for torch, or for llama.cpp with --engine llamacpp (default: one per "
                                 "core); on a busy machine fewer threads than cores avoids threads spinning against "
                                 "each other", None, low=1)
    host: str = option("interface to listen on (default: loopback only)", "127.0.0.1")
    backend: BackendConfig = option("which engine generates (--engine zhllama|vllm|llamacpp)", factory=BackendConfig)


@dataclass(kw_only=True)
class ApiSettings:
    """How the OpenAI-compatible API behaves: the one settings object ``create_app`` takes, and the
    ``zhllama serve`` options that fill it."""

    api_key: str | None = option("require 'Authorization: Bearer KEY' on the API routes (default: no auth)", None)
    model_name: str | None = option("the model id clients send (default: the folder's name)", None)
    max_tokens: int = option("max_tokens when a request does not set it", SAMPLING_DEFAULTS.max_new_tokens, low=1)
    max_prompt_tokens: int | None = option("longest prompt accepted, in tokens (default: the model's context - 1)", None, low=1)
    max_request_bytes: int = option("larger request bodies get 413", 1 << 20, low=1)
    max_batch_size: int = option("requests decoded together at most", 8, low=1)
    max_queue: int = option("queued requests at most; beyond it 503", 64, low=1)
    batch_wait_ms: float = option("a batch starts once no new request came for this long (at most 5x this in all), "
                                  "so requests sent together are decoded together", 30.0, low=0)
    scheduler: Literal["continuous", "static"] = option(
        "continuous: a request joins the running batch at the next decode step and leaves it as soon as it ends or its "
        "client goes away; static: a batch runs to its end before the requests that came meanwhile start",
        "continuous")

    @property
    def batch_wait_s(self) -> float:
        return self.batch_wait_ms / 1000


@dataclass(kw_only=True)
class ServeConfig(ServedModel):
    port: int = option("port to listen on", 8000, low=1, high=65535)
    api: ApiSettings = option("how the API behaves", factory=ApiSettings)
    log_level: Literal["critical", "error", "warning", "info", "debug"] = option("uvicorn's log level", "info")


@dataclass(kw_only=True)
class WebuiConfig(ServedModel):
    port: int = option("port to listen on", 7860, low=1, high=65535)
    max_batch_size: int = option("concurrent chats decoded together at most", 8, low=1)

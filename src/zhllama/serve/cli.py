"""`zhllama serve` (OpenAI-compatible API) and `zhllama webui` (Gradio chat page); options from ``serve/config.py``."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from ..config import add_dataclass_args, from_args


def register(sub: argparse._SubParsersAction) -> None:
    from .config import ServeConfig, WebuiConfig

    serve = sub.add_parser(
        "serve", help="serve a model over an OpenAI-compatible HTTP API",
        description="Serve a model over an OpenAI-compatible API (/v1/models, /v1/chat/completions, "
                    "/v1/completions with SSE streaming, /v1/embeddings), ChatLLaMA's POST /chat and GET /health. "
                    "Concurrent requests are batched together on the model (continuous batching: a new request joins the "
                    "running batch at the next decode step); the OpenAPI schema is at /docs.")
    add_dataclass_args(serve, ServeConfig, overrides=False)
    serve.set_defaults(func=_serve)

    webui = sub.add_parser("webui", help="a Gradio chat page for a model",
                           description="A Gradio chat page: streaming replies, multi-turn history, a system prompt "
                                       "and sampling sliders, on the same engine and batching as `zhllama serve`.")
    add_dataclass_args(webui, WebuiConfig, overrides=False)
    webui.set_defaults(func=_webui)


def _load_engine(cfg, parallel: int):
    from ..checks import is_local
    from ..model.load import check_model_dir

    if cfg.backend.kind == "zhllama" and is_local(cfg.engine.model):
        check_model_dir(cfg.engine.model)  # one-line error before any heavy loading
    return cfg.backend.load(cfg.engine, threads=cfg.threads, parallel=parallel)


def _serve(args: argparse.Namespace) -> int:
    from ..checks import check_port_free
    from .config import ServeConfig

    cfg = from_args(ServeConfig, args)
    check_port_free(cfg.host, cfg.port)
    engine = _load_engine(cfg, cfg.api.max_batch_size)
    import uvicorn

    from .openai import create_app

    settings = replace(cfg.api, model_name=cfg.api.model_name or Path(cfg.engine.model).name)
    app = create_app(engine, settings)
    if cfg.host not in ("127.0.0.1", "localhost", "::1") and not cfg.api.api_key:
        print(f"zhllama: warning: listening on {cfg.host} without --api-key: anyone who can reach this port can "
              "use the model", file=sys.stderr)
    print(f"zhllama: serving '{settings.model_name}' (template {engine.template.name}, context "
          f"{engine.context_length}) on http://{cfg.host}:{cfg.port}/v1", flush=True)
    uvicorn.run(app, host=cfg.host, port=cfg.port, log_level=cfg.log_level)
    return 0


def _webui(args: argparse.Namespace) -> int:
    from ..checks import check_port_free
    from .config import WebuiConfig
    from .webui import launch, require_gradio

    cfg = from_args(WebuiConfig, args)
    require_gradio()
    check_port_free(cfg.host, cfg.port)
    engine = _load_engine(cfg, cfg.max_batch_size)

    launch(engine, host=cfg.host, port=cfg.port, title=Path(cfg.engine.model).name, max_batch_size=cfg.max_batch_size)
    return 0

"""`zhllama serve` (OpenAI-compatible API) and `zhllama webui` (Gradio chat page)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    serve = sub.add_parser(
        "serve", help="serve a model over an OpenAI-compatible HTTP API",
        description="Serve a model over an OpenAI-compatible API (/v1/models, /v1/chat/completions, "
                    "/v1/completions with SSE streaming, /v1/embeddings), ChatLLaMA's POST /chat and GET /health. "
                    "Concurrent requests are batched together on the model; the OpenAPI schema is at /docs.")
    _model_args(serve)
    serve.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: loopback only)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--api-key", default=None,
                       help="require 'Authorization: Bearer KEY' on the API routes (default: no auth)")
    serve.add_argument("--model-name", default=None, help="the model id clients send (default: the folder's name)")
    serve.add_argument("--max-tokens", type=int, default=256, help="max_tokens when a request does not set it")
    serve.add_argument("--max-prompt-tokens", type=int, default=None,
                       help="longest prompt accepted, in tokens (default: the model's context - 1)")
    serve.add_argument("--max-request-bytes", type=int, default=1 << 20, help="larger request bodies get 413")
    serve.add_argument("--max-batch-size", type=int, default=8, help="requests decoded together at most")
    serve.add_argument("--max-queue", type=int, default=64, help="queued requests at most; beyond it 503")
    serve.add_argument("--batch-wait-ms", type=float, default=30.0,
                       help="a batch starts once no new request came for this long (at most 5x this in all), so "
                            "requests sent together are decoded together")
    serve.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    serve.set_defaults(func=_serve)

    webui = sub.add_parser("webui", help="a Gradio chat page for a model",
                           description="A Gradio chat page: streaming replies, multi-turn history, a system prompt "
                                       "and sampling sliders, on the same engine and batching as `zhllama serve`.")
    _model_args(webui)
    webui.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: loopback only)")
    webui.add_argument("--port", type=int, default=7860)
    webui.add_argument("--max-batch-size", type=int, default=8, help="concurrent chats decoded together at most")
    webui.set_defaults(func=_webui)


def _model_args(p: argparse.ArgumentParser) -> None:
    from ..infer.cli import add_engine_args

    add_engine_args(p)
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for torch (default: torch's choice, one per core); on a busy machine fewer "
                        "threads than cores avoids threads spinning against each other")


def _positive(name: str, value: float) -> None:
    from ..errors import ZhllamaError

    if value is not None and value < 1:
        raise ZhllamaError(f"{name} must be at least 1, got {value}", f"give a positive {name}")


def _load_engine(args: argparse.Namespace):
    from ..infer.cli import load_engine
    from ..model.load import check_model_dir, is_local

    if is_local(args.model):
        check_model_dir(args.model)  # one-line error before any heavy loading
    if args.threads is not None:
        import torch

        _positive("--threads", args.threads)
        torch.set_num_threads(args.threads)
    return load_engine(args)


def _serve(args: argparse.Namespace) -> int:
    for name in ("port", "max_tokens", "max_prompt_tokens", "max_request_bytes", "max_batch_size", "max_queue"):
        _positive("--" + name.replace("_", "-"), getattr(args, name))
    engine = _load_engine(args)
    import uvicorn

    from .openai import ServeSettings, create_app

    settings = ServeSettings(
        model_name=args.model_name or Path(args.model).name, api_key=args.api_key,
        max_request_bytes=args.max_request_bytes, max_prompt_tokens=args.max_prompt_tokens,
        default_max_tokens=args.max_tokens, max_batch_size=args.max_batch_size, max_queue=args.max_queue,
        batch_wait_s=args.batch_wait_ms / 1000)
    app = create_app(engine, settings)
    if args.host not in ("127.0.0.1", "localhost", "::1") and not args.api_key:
        print(f"zhllama: warning: listening on {args.host} without --api-key: anyone who can reach this port can "
              "use the model", file=sys.stderr)
    print(f"zhllama: serving '{settings.model_name}' (template {engine.template.name}, context "
          f"{engine.context_length}) on http://{args.host}:{args.port}/v1", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0


def _webui(args: argparse.Namespace) -> int:
    _positive("--port", args.port)
    _positive("--max-batch-size", args.max_batch_size)
    from .webui import launch, require_gradio

    require_gradio()
    engine = _load_engine(args)

    launch(engine, host=args.host, port=args.port, title=Path(args.model).name, max_batch_size=args.max_batch_size)
    return 0

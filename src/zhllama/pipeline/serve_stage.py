"""The serve stage: the run's final model behind ``zhllama serve``'s OpenAI-compatible API, asked over HTTP.

It starts the real server (the same app and engine as ``zhllama serve --model MODEL``) on a free
loopback port, sends each of ``serve.messages`` as a ``POST /v1/chat/completions`` request, and
checks the hand-off a user of the model relies on: the prompt the server built (``usage.prompt_tokens``)
is exactly as long as ``apply_chat_template(messages, add_generation_prompt=True)`` of the saved
tokenizer, so vLLM, transformers or llama.cpp given the same folder build the same prompt.  A
mismatch stops the run with the two counts.  Then the server stops.

Outputs: ``serve/out/serve.json`` (each request, its reply and usage, the command that serves the
model and a ``curl`` line); its metrics (template, prompt and completion tokens, latency) go into
the summary.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from contextlib import contextmanager

from ..errors import ZhllamaError
from ..io import write_text_atomic
from .recipe import ServeSection
from .runner import StageRun


def run_serve_stage(ctx: StageRun) -> dict:
    from ..infer.backend import BackendConfig
    from ..infer.config import EngineConfig
    from ..serve.config import ApiSettings
    from ..serve.openai import create_app
    from ..tokenizer.load import load_tokenizer

    s: ServeSection = ctx.settings
    if not s.messages:
        raise ZhllamaError("serve: messages is empty", "give one or more questions to send to the served model")
    model = ctx.inputs["model"]
    engine = BackendConfig().load(EngineConfig(model=model), threads=None, parallel=1)
    app = create_app(engine, ApiSettings(model_name="zhllama", max_tokens=s.max_tokens))
    saved = load_tokenizer(model)  # the folder's tokenizer, as transformers reads it (AutoTokenizer)
    exchanges = []
    with running_server(app) as url:
        for question in s.messages:
            messages = ([{"role": "system", "content": s.system}] if s.system else []) + [{"role": "user", "content": question}]
            start = time.perf_counter()
            reply = post_json(f"{url}/v1/chat/completions", {"model": "zhllama", "messages": messages,
                                                              "max_tokens": s.max_tokens, "temperature": 0})
            exchanges.append({"messages": messages, "latency_s": round(time.perf_counter() - start, 3),
                              "reply": reply["choices"][0]["message"]["content"], "usage": reply["usage"],
                              "template_prompt_tokens": template_prompt_tokens(saved, messages)})
    check_prompt_lengths(exchanges, engine.template.name)
    write_text_atomic(ctx.out / "serve.json", json.dumps({
        "command": f"zhllama serve --model {model}",
        "curl": (f"curl http://127.0.0.1:8000/v1/chat/completions -H 'Content-Type: application/json' -d "
                 f"'{json.dumps({'model': 'zhllama', 'messages': exchanges[0]['messages']}, ensure_ascii=False)}'"),
        "template": engine.template.name, "exchanges": exchanges}, ensure_ascii=False, indent=2) + "\n")
    return {"template": engine.template.name, "requests": len(exchanges),
            "prompt_tokens": [e["usage"]["prompt_tokens"] for e in exchanges],
            "completion_tokens": [e["usage"]["completion_tokens"] for e in exchanges],
            "latency_s": [e["latency_s"] for e in exchanges], "first_reply": exchanges[0]["reply"]}


def template_prompt_tokens(tokenizer, messages: list[dict]) -> int:
    """The prompt length transformers builds from the saved tokenizer's own chat template (the folder's
    tokenizer as zhllama's one loader reads it: ``AutoTokenizer`` for a folder with a tokenizer.json)."""
    encoded = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    return len(encoded["input_ids"] if hasattr(encoded, "keys") else encoded)


def check_prompt_lengths(exchanges: list[dict], template: str) -> None:
    for e in exchanges:
        served, saved = e["usage"]["prompt_tokens"], e["template_prompt_tokens"]
        if served != saved:
            raise ZhllamaError(f"serve: the server built a {served}-token prompt with template {template}, but the "
                               f"saved tokenizer's chat_template gives {saved} tokens for the same messages",
                               "the model folder's tokenizer_config.json chat_template and zhllama.json template "
                               "disagree: re-run the stage that wrote the model")


@contextmanager
def running_server(app):
    """``app`` served by uvicorn on a free loopback port in a background thread; yields its base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url, thread)
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(url: str, thread: threading.Thread, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not thread.is_alive():
            raise ZhllamaError("serve: the server stopped while starting", "see the log above")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=5):
                return
        except OSError:
            time.sleep(0.1)
    raise ZhllamaError(f"serve: the server at {url} did not answer /health within {timeout:.0f} s", "see the log above")


def post_json(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=600) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as err:
        raise ZhllamaError(f"serve: {url} answered {err.code}: {err.read().decode(errors='replace')[:300]}",
                           "the served model refused the stage's request") from None

"""`zhllama webui`: a Gradio chat page (streaming, multi-turn, system prompt, sampling sliders, CFG).

Replies are generated through the same continuous batching as the API server, so several open
browser tabs are decoded together and the model is only ever touched by its one worker thread.
"""

from __future__ import annotations

import os

from ..errors import ZhllamaError
from ..infer.sampling import SAMPLING_DEFAULTS as D
from .batching import BatchScheduler, Channel, GenJob
from .continuous import ContinuousScheduler
from .http import APIError, as_api_error
from .results import stream_events


def history_to_messages(history: list, system: str | None) -> list[dict]:
    """Gradio's openai-style history (content a str or a list of parts) -> zhllama messages."""
    messages = [{"role": "system", "content": system}] if system and system.strip() else []
    for item in history or []:
        role = item.get("role") if isinstance(item, dict) else None
        text = _text_of(item.get("content")) if role in ("user", "assistant") else None
        if text is None:
            continue
        if messages and messages[-1]["role"] == role:  # e.g. a reply that failed: keep the turns alternating
            messages[-1]["content"] += "\n" + text
        else:
            messages.append({"role": role, "content": text})
    return messages


def _text_of(content) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, dict) and isinstance(content.get("text"), str):
        return content["text"]
    if isinstance(content, list):
        parts = [_text_of(p) for p in content]
        texts = [p for p in parts if p is not None]
        return "".join(texts) if texts else None
    return None  # files, images: not for a text model


def make_responder(engine, scheduler: BatchScheduler):
    """The ChatInterface function: an async generator yielding the reply so far."""
    from ..infer.engine import SamplingParams

    async def respond(message, history, system, temperature, top_p, top_k, max_new_tokens, repetition_penalty,
                      negative_prompt="", guidance_scale=D.guidance_scale):
        import gradio as gr

        text = _text_of(message) or ""
        if not text.strip():
            raise gr.Error("type a message first")
        messages = history_to_messages(history, system)
        if messages and messages[-1]["role"] == "user":  # the previous reply failed: merge the two asks
            messages[-1]["content"] += "\n" + text
        else:
            messages.append({"role": "user", "content": text})
        max_new = int(max_new_tokens)
        params = SamplingParams(max_new_tokens=max_new, temperature=float(temperature), top_p=float(top_p),
                                top_k=int(top_k), repetition_penalty=float(repetition_penalty),
                                guidance_scale=float(guidance_scale), negative_prompt=negative_prompt or None)
        job = GenJob(lambda: engine.chat_prompt(messages, max_new), params, Channel(),
                     negative=lambda: engine.negative_chat_prompt(messages, params))
        reply = ""
        try:
            params.validate()
            scheduler.submit([job])
            async for _, delta in stream_events(job.channel, [job], []):
                reply += delta.text
                yield reply
        except Exception as e:
            err = e if isinstance(e, APIError) else as_api_error(e)
            raise gr.Error(err.message) from None
        finally:
            job.cancelled = True

    return respond


def require_gradio() -> None:
    """Fail in one line, before any model is loaded, when the optional ``webui`` extra is missing."""
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise ZhllamaError("the web UI needs gradio, which is not installed",
                           "pip install 'zhllama[webui]'") from None


def build_demo(engine, title: str = "zhllama", max_batch_size: int = 8):
    """The Gradio Blocks app and the scheduler it generates through (started here)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import gradio as gr

    scheduler = ContinuousScheduler(engine, max_batch_size=max_batch_size, max_queue=64)
    scheduler.start()
    limit = max(1, min(2048, engine.context_length - 1))
    inputs = [
        gr.Textbox(value=engine.template.default_system or "", label="System prompt (blank: the template's default)",
                   lines=2),
        gr.Slider(0.0, 2.0, value=D.temperature, step=0.05, label="temperature (0 = greedy)"),
        gr.Slider(0.05, 1.0, value=D.top_p, step=0.05, label="top_p"),
        gr.Slider(0, 200, value=D.top_k, step=1, label="top_k (0 = off)"),
        gr.Slider(1, limit, value=min(D.max_new_tokens, limit), step=1, label="max new tokens"),
        gr.Slider(1.0, 2.0, value=D.repetition_penalty, step=0.05, label="repetition penalty (1 = off)"),
        gr.Textbox(value="", label="Negative prompt (CFG; it takes the system prompt's place; blank: the prompt's "
                                   "last token)", lines=1),
        gr.Slider(1.0, 3.0, value=D.guidance_scale, step=0.1, label="guidance scale (CFG, 1 = off)"),
    ]
    demo = gr.ChatInterface(
        make_responder(engine, scheduler), additional_inputs=inputs, title=title,
        description=f"template `{engine.template.name}`, context {engine.context_length} tokens",
        additional_inputs_accordion=gr.Accordion("System prompt and sampling", open=False),
        api_name="chat", fill_height=True)
    return demo, scheduler


def launch(engine, host: str = "127.0.0.1", port: int = 7860, title: str = "zhllama", max_batch_size: int = 8) -> None:
    demo, scheduler = build_demo(engine, title, max_batch_size)
    print(f"zhllama: web UI on http://{host}:{port}", flush=True)
    try:
        demo.queue(default_concurrency_limit=max_batch_size).launch(
            server_name=host, server_port=port, share=False, inbrowser=False, show_error=True)
    finally:
        scheduler.close()

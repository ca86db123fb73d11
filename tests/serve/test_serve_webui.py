"""`zhllama webui`: the Gradio page answers through gradio_client; multi-turn history reaches the prompt."""

from __future__ import annotations

import asyncio

import pytest

from zhllama.serve.webui import history_to_messages, make_responder


def test_history_conversion_accepts_gradio_message_formats():
    history = [
        {"role": "user", "content": "你好"},
        {"role": "assistant", "content": [{"type": "text", "text": "你好！"}]},
        {"role": "user", "content": {"path": "/tmp/cat.png"}},  # a file: not for a text model
        {"role": "user", "content": "再见"},
        {"role": "user", "content": "还在吗"},  # the reply to the previous ask failed
    ]
    assert history_to_messages(history, "  ") == [
        {"role": "user", "content": "你好"},
        {"role": "assistant", "content": "你好！"},
        {"role": "user", "content": "再见\n还在吗"},
    ]
    assert history_to_messages([], "系统")[0] == {"role": "system", "content": "系统"}


def test_responder_with_a_negative_prompt_equals_the_engine(engine):
    from zhllama.infer.engine import SamplingParams
    from zhllama.serve.continuous import ContinuousScheduler

    messages = [{"role": "system", "content": "你是助手"}, {"role": "user", "content": "北京在哪里"}]
    params = SamplingParams(max_new_tokens=10, temperature=0, top_k=40, top_p=0.9, guidance_scale=2.0,
                            negative_prompt="回答要简短")
    expected = engine.generate([engine.chat_prompt(messages, 10)], params,
                               negatives=[engine.negative_chat_prompt(messages, params)])[0].text

    async def run():
        scheduler = ContinuousScheduler(engine)
        scheduler.start()
        try:
            respond = make_responder(engine, scheduler)
            return [p async for p in respond("北京在哪里", [], "你是助手", 0.0, 0.9, 40, 10, 1.1, "回答要简短", 2.0)]
        finally:
            scheduler.close()

    assert asyncio.run(run())[-1] == expected


def test_responder_streams_a_multi_turn_reply_equal_to_the_engine(engine):
    from zhllama.infer.engine import SamplingParams
    from zhllama.serve.batching import BatchScheduler

    history = [{"role": "user", "content": "你好"}, {"role": "assistant", "content": "你好，有什么可以帮你？"}]
    expected_messages = [{"role": "system", "content": "你是助手"}, *history, {"role": "user", "content": "北京在哪里"}]
    expected = engine.generate([engine.chat_prompt(expected_messages, 10)],
                               SamplingParams(max_new_tokens=10, temperature=0, top_k=40, top_p=0.9))[0].text

    async def run():
        scheduler = BatchScheduler(engine)
        scheduler.start()
        try:
            respond = make_responder(engine, scheduler)
            return [p async for p in respond("北京在哪里", history, "你是助手", 0.0, 0.9, 40, 10, 1.1)]
        finally:
            scheduler.close()

    partials = asyncio.run(run())
    assert partials[-1] == expected
    assert all(b.startswith(a) for a, b in zip(partials, partials[1:]))  # growing text: streamed


@pytest.mark.slow  # starting a Gradio process takes ~20 s on a busy 2-core machine
def test_webui_answers_through_gradio_client(tiny_model_dir, engine, cli_process, port, monkeypatch):
    from gradio_client import Client

    from zhllama.infer.engine import SamplingParams

    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    url = cli_process(["webui", "--model", str(tiny_model_dir), "--port", str(port)], "/", port)
    client = Client(url + "/", verbose=False, download_files=False)
    reply = client.predict("你好", "", 0.0, 0.9, 40, 8, 1.1, "", 1.0, api_name="/chat")
    expected = engine.generate([engine.chat_prompt([{"role": "user", "content": "你好"}], 8)],
                               SamplingParams(max_new_tokens=8, temperature=0))[0].text
    assert reply == expected

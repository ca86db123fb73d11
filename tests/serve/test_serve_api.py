"""The OpenAI-compatible API in process (FastAPI TestClient) over the tiny model's real engine."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

MODEL = "tiny"  # the name the fixtures serve the tiny model under

HI = [{"role": "user", "content": "你好"}]


def chat(client, **body):
    return client.post("/v1/chat/completions", json={"model": MODEL, "messages": HI, **body})


def sse_events(text: str) -> list:
    """The data payloads of an SSE body, in order ('[DONE]' kept as a string)."""
    datas = [line[len("data: "):] for line in text.splitlines() if line.startswith("data: ")]
    return [d if d == "[DONE]" else json.loads(d) for d in datas]


def assert_openai_error(r, status: int, param: str | None = None, code: str | None = None):
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["message"]
    if param is not None:
        assert err["param"] == param
    if code is not None:
        assert err["code"] == code
    return err


def test_chat_completion_shape_and_usage(client, engine):
    r = chat(client, max_tokens=6, temperature=0)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "chat.completion" and body["model"] == MODEL
    (choice,) = body["choices"]
    assert choice["message"]["role"] == "assistant" and choice["finish_reason"] in ("stop", "length")
    prompt = engine.chat_prompt(HI, 6)
    assert body["usage"]["prompt_tokens"] == len(prompt)
    if choice["finish_reason"] == "length":
        assert body["usage"]["completion_tokens"] == 6
    assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] + body["usage"]["completion_tokens"]


def test_greedy_chat_equals_engine_output(client, engine):
    from zhllama.infer.engine import SamplingParams

    expected = engine.generate([engine.chat_prompt(HI, 10)], SamplingParams(max_new_tokens=10, temperature=0))[0]
    r = chat(client, max_tokens=10, temperature=0)
    assert r.json()["choices"][0]["message"]["content"] == expected.text


def test_n_choices_and_seed_reproducible(client):
    a = chat(client, max_tokens=8, n=3, seed=7, temperature=1.0).json()
    b = chat(client, max_tokens=8, n=3, seed=7, temperature=1.0).json()
    texts = [c["message"]["content"] for c in a["choices"]]
    assert [c["index"] for c in a["choices"]] == [0, 1, 2]
    assert texts == [c["message"]["content"] for c in b["choices"]]
    assert len(set(texts)) > 1  # one seed, yet the choices differ


def test_stop_string_cuts_output(client):
    full = client.post("/v1/completions", json={"model": MODEL, "prompt": "The", "max_tokens": 12,
                                                 "temperature": 0}).json()["choices"][0]["text"]
    stop = full.strip()[2:5] if len(full.strip()) > 5 else full.strip()[:1]
    cut = client.post("/v1/completions", json={"model": MODEL, "prompt": "The", "max_tokens": 12, "temperature": 0,
                                                "stop": [stop]}).json()["choices"][0]
    assert stop not in cut["text"] and full.startswith(cut["text"]) and cut["finish_reason"] == "stop"


def test_completions_batch_of_prompts_and_echo(client):
    r = client.post("/v1/completions", json={"model": MODEL, "prompt": ["一", "two"], "n": 2, "max_tokens": 4,
                                              "echo": True})
    body = r.json()
    assert body["object"] == "text_completion"
    assert [c["index"] for c in body["choices"]] == [0, 1, 2, 3]
    assert [c["text"][:1] for c in body["choices"]] == ["一", "一", "t", "t"]


def test_chat_stream_sse(client):
    with client.stream("POST", "/v1/chat/completions",
                       json={"model": MODEL, "messages": HI, "max_tokens": 6, "stream": True, "temperature": 0,
                             "stream_options": {"include_usage": True}}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = sse_events(r.read().decode())
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    finals = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert finals in (["length"], ["stop"])
    assert chunks[-1]["choices"] == []
    plain = chat(client, max_tokens=6, temperature=0).json()
    assert text == plain["choices"][0]["message"]["content"]
    assert chunks[-1]["usage"] == plain["usage"]  # streamed usage is exact, not re-tokenized


def test_completion_stream_has_done_and_equals_the_whole_text(client):
    body = {"model": MODEL, "prompt": "北京", "max_tokens": 5, "seed": 11, "temperature": 1.0}
    with client.stream("POST", "/v1/completions", json={**body, "stream": True}) as r:
        events = sse_events(r.read().decode())
    assert events[-1] == "[DONE]" and events[-2]["choices"][0]["finish_reason"] in ("stop", "length")
    whole = client.post("/v1/completions", json=body).json()["choices"][0]["text"]
    assert "".join(e["choices"][0]["text"] for e in events[:-1]) == whole


def test_embeddings_float_and_base64(client):
    r = client.post("/v1/embeddings", json={"model": MODEL, "input": ["你好", "hello"]})
    data = r.json()["data"]
    assert [d["index"] for d in data] == [0, 1]
    v = np.array(data[0]["embedding"])
    assert abs(np.linalg.norm(v) - 1) < 1e-4
    r64 = client.post("/v1/embeddings", json={"model": MODEL, "input": "你好", "encoding_format": "base64"})
    decoded = np.frombuffer(base64.b64decode(r64.json()["data"][0]["embedding"]), dtype="<f4")
    assert np.allclose(decoded, v, atol=1e-6)
    assert r64.json()["usage"]["prompt_tokens"] >= 2


def test_models_health_and_openapi(client):
    models = client.get("/v1/models").json()
    assert models["object"] == "list" and models["data"][0]["id"] == MODEL
    assert client.get(f"/v1/models/{MODEL}").json()["id"] == MODEL
    assert_openai_error(client.get("/v1/models/gpt-4"), 404, code="model_not_found")
    assert client.get("/health").json()["status"] == "ok"
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/models", "/chat", "/health"} <= set(paths)


def test_chatllama_route(client):
    r = client.post("/chat", json={"question": "北京有什么好玩的地方？"})
    assert r.status_code == 200 and r.json()["status"] == "success"
    assert isinstance(r.json()["answer"], list) and len(r.json()["answer"]) == 1


@pytest.mark.parametrize("body, param", [
    ({"model": "gpt-3.5-turbo"}, "model"),
    ({"messages": []}, "messages"),
    ({"messages": [{"role": "tool", "content": "x"}]}, "messages.0.role"),
    ({"messages": [{"role": "user"}]}, "messages.0.content"),
    ({"messages": "hello"}, "messages"),
    ({"max_tokens": -5}, "max_tokens"),
    ({"max_tokens": "many"}, "max_tokens"),
    ({"temperature": 2.5}, "temperature"),
    ({"temperature": -0.1}, "temperature"),
    ({"top_p": 0}, "top_p"),
    ({"n": 0}, "n"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ({"messages": [{"role": "assistant", "content": "x"}]}, "messages"),
    ({"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]}, "messages"),
    ({"max_tokens": 100_000}, "max_tokens"),
])
def test_bad_chat_requests_are_openai_4xx(client, body, param):
    status = 404 if param == "model" else 400
    assert_openai_error(chat(client, **body), status, param=param)
    assert chat(client, max_tokens=2).status_code == 200  # still serving


def test_over_long_prompt(client):
    long_text = "人民日报 " * 400
    assert_openai_error(chat(client, messages=[{"role": "user", "content": long_text}]), 400,
                        code="context_length_exceeded")
    r = client.post("/v1/completions", json={"model": MODEL, "prompt": long_text})
    assert_openai_error(r, 400, param="prompt", code="context_length_exceeded")


def test_long_history_is_trimmed_not_refused(client):
    turn = "今天天气很好，我们去公园散步吧。" * 4
    history = []
    for _ in range(12):
        history += [{"role": "user", "content": turn}, {"role": "assistant", "content": turn}]
    r = chat(client, messages=history + [{"role": "user", "content": "好"}], max_tokens=4)
    assert r.status_code == 200, r.text
    assert r.json()["usage"]["prompt_tokens"] <= 300


def test_malformed_json_and_size_limit(client):
    r = client.post("/v1/chat/completions", content=b'{"model": "tiny", "messages": [', headers={"content-type": "application/json"})
    assert_openai_error(r, 400)
    big = {"model": MODEL, "messages": [{"role": "user", "content": "x" * 60_000}]}
    assert_openai_error(client.post("/v1/chat/completions", json=big), 413, code="request_too_large")
    assert_openai_error(client.post("/v1/nothing", json={}), 404)

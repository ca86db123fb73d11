"""A real `zhllama serve` process on 127.0.0.1, driven by the official openai client and raw httpx SSE."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest

API_KEY = "sk-test-zhllama"  # as in conftest's `server` fixture
MODEL = "tiny"


@pytest.fixture(scope="module")
def oai(server):
    return openai.OpenAI(base_url=f"{server}/v1", api_key=API_KEY, timeout=60, max_retries=0)


def auth():
    return {"Authorization": f"Bearer {API_KEY}"}


def test_models_and_chat(oai):
    assert [m.id for m in oai.models.list().data] == [MODEL]
    r = oai.chat.completions.create(model=MODEL, messages=[{"role": "system", "content": "你是助手。"},
                                                           {"role": "user", "content": "你好"}], max_tokens=6)
    assert r.object == "chat.completion" and r.choices[0].message.role == "assistant"
    assert r.usage.prompt_tokens > 0 and r.usage.completion_tokens >= 1
    assert r.choices[0].finish_reason in ("stop", "length")


def test_completions_with_n_and_seed(oai):
    a = oai.completions.create(model=MODEL, prompt="中国", max_tokens=5, n=2, seed=3, temperature=1.0)
    b = oai.completions.create(model=MODEL, prompt="中国", max_tokens=5, n=2, seed=3, temperature=1.0)
    assert len(a.choices) == 2 and [c.text for c in a.choices] == [c.text for c in b.choices]


def test_streaming_with_openai_client(oai):
    stream = oai.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "讲个故事"}],
                                         max_tokens=8, stream=True, temperature=0,
                                         stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens >= 1
    plain = oai.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "讲个故事"}],
                                        max_tokens=8, temperature=0)
    assert text == plain.choices[0].message.content


def test_raw_sse_ends_with_done(server):
    body = {"model": MODEL, "prompt": "人民", "max_tokens": 6, "seed": 5, "temperature": 1.0}
    with httpx.stream("POST", f"{server}/v1/completions", json={**body, "stream": True}, headers=auth(), timeout=60) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        datas = [line[6:] for line in r.iter_lines() if line.startswith("data: ")]
    assert datas[-1] == "[DONE]"
    events = [json.loads(d) for d in datas[:-1]]
    assert events[-1]["choices"][0]["finish_reason"] in ("stop", "length")
    whole = httpx.post(f"{server}/v1/completions", json=body, headers=auth(), timeout=60).json()
    assert "".join(e["choices"][0]["text"] for e in events) == whole["choices"][0]["text"]


def test_embeddings_with_openai_client(oai):
    r = oai.embeddings.create(model=MODEL, input=["你好", "世界", "hello"])  # the client asks for base64
    assert [d.index for d in r.data] == [0, 1, 2]
    assert len({len(d.embedding) for d in r.data}) == 1 and len(r.data[0].embedding) == 64
    assert abs(sum(x * x for x in r.data[0].embedding) - 1) < 1e-3


def test_auth_failure(server):
    bad = openai.OpenAI(base_url=f"{server}/v1", api_key="wrong", max_retries=0, timeout=30)
    with pytest.raises(openai.AuthenticationError) as e:
        bad.models.list()
    assert e.value.status_code == 401 and e.value.body["code"] == "invalid_api_key"
    r = httpx.post(f"{server}/chat", json={"question": "hi"}, timeout=30)
    assert r.status_code == 401 and r.json()["error"]["type"] == "invalid_request_error"
    assert httpx.get(f"{server}/health", timeout=30).status_code == 200  # health needs no key


@pytest.mark.parametrize("kwargs, error", [
    ({"model": "gpt-4"}, openai.NotFoundError),
    ({"max_tokens": -1}, openai.BadRequestError),
    ({"temperature": 3}, openai.BadRequestError),
    ({"messages": []}, openai.BadRequestError),
    ({"messages": [{"role": "function", "content": "x"}]}, openai.BadRequestError),
    ({"messages": [{"role": "user", "content": "数据 " * 600}]}, openai.BadRequestError),
])
def test_bad_requests_get_4xx_and_server_keeps_serving(oai, kwargs, error):
    args = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, **kwargs}
    with pytest.raises(error) as e:
        oai.chat.completions.create(**args)
    assert set(e.value.body) >= {"message", "type", "param", "code"}
    assert oai.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}],
                                       max_tokens=2).choices


def test_malformed_request_and_wrong_types(server):
    r = httpx.post(f"{server}/v1/chat/completions", content=b"not json", headers={**auth(), "content-type": "application/json"},
                   timeout=30)
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    r = httpx.post(f"{server}/v1/completions", json={"model": MODEL, "prompt": 42, "max_tokens": "x"}, headers=auth(),
                   timeout=30)
    assert r.status_code == 400 and r.json()["error"]["param"] in ("prompt", "max_tokens")
    r = httpx.post(f"{server}/v1/completions", json={"model": MODEL, "prompt": "x" * 200_000}, headers=auth(), timeout=30)
    assert r.status_code == 413


def test_sixteen_concurrent_requests_all_answered(oai, server):
    def ask(i):
        r = oai.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": f"问题{i}"}], max_tokens=6,
                                        seed=i)
        return r.choices[0].finish_reason

    before = httpx.get(f"{server}/health", timeout=30).json()
    with ThreadPoolExecutor(16) as pool:
        reasons = list(pool.map(ask, range(16), timeout=120))
    assert len(reasons) == 16 and all(r in ("stop", "length") for r in reasons)
    after = httpx.get(f"{server}/health", timeout=30).json()
    assert after["jobs"] - before["jobs"] == 16
    assert after["batches"] - before["batches"] < 16  # requests were batched together
    assert after["largest_batch"] > 1


def test_missing_model_folder_is_one_line_error_at_startup(tmp_path):
    r = subprocess.run([sys.executable, "-m", "zhllama", "serve", "--model", str(tmp_path / "nope")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert r.stderr.startswith("zhllama: error:") and len(r.stderr.strip().splitlines()) == 1
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.json").write_text("{}")
    r = subprocess.run([sys.executable, "-m", "zhllama", "serve", "--model", str(tmp_path / "half")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "no model weights" in r.stderr and len(r.stderr.strip().splitlines()) == 1

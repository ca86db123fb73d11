"""Nothing one client sends breaks another client's request (issue: request isolation).

Bad values are refused per request before they join a batch; and if a request still makes a shared
batch fail, only that request gets the error.
"""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from zhllama.infer.sampling import SamplingParams, generator_seed
from zhllama.serve.batching import BatchScheduler, Channel, Delta, GenJob, Started

from test_serve_api import HI, MODEL, assert_openai_error, chat
from test_serve_batching import drain


class PoisonedParams(SamplingParams):
    """Valid settings that make the sampler raise inside the batch (stands in for an unforeseen bug)."""

    def shaping_key(self):
        raise RuntimeError("poisoned request")


def _text(events: list) -> str:
    return "".join(e.text for e in events if isinstance(e, Delta))


def test_a_request_that_fails_inside_a_batch_fails_alone(engine):
    prompts = [engine.text_prompt(t) for t in ["北京", "上海", "你好", "中国"]]
    greedy = SamplingParams(max_new_tokens=5, temperature=0.0)

    async def run(params_list):
        sched = BatchScheduler(engine, max_batch_size=8, batch_wait_s=0.05)
        channel = Channel()
        jobs = [GenJob((lambda p=p: p), params, channel, index=i) for i, (p, params) in enumerate(params_list)]
        sched.submit(jobs)
        sched.start()
        try:
            return await drain(channel, len(jobs), timeout=60), sched.stats
        finally:
            sched.close()

    clean, _ = asyncio.run(run([(p, greedy) for p in prompts]))
    poisoned = PoisonedParams(max_new_tokens=5, temperature=0.7)
    mixed, stats = asyncio.run(run([(p, greedy) for p in prompts[:2]] + [(prompts[2], poisoned)] +
                                   [(prompts[3], greedy)]))
    assert stats.batch_sizes.get(4) == 1  # they really shared one batch before it failed
    assert isinstance(mixed[2][-1], RuntimeError) and "poisoned" in str(mixed[2][-1])
    for i in (0, 1, 3):
        assert isinstance(mixed[i][0], Started)
        assert mixed[i][-1].finish_reason is not None, mixed[i]
        assert _text(mixed[i]) == _text(clean[i])  # same greedy answer as in a healthy batch


@pytest.mark.parametrize("seed", [2**200, 2**64, -(2**70)])
def test_out_of_range_seed_is_a_400_naming_seed(client, seed):
    assert_openai_error(chat(client, max_tokens=3, seed=seed), 400, param="seed")


def test_seed_at_the_top_of_the_range_with_n_choices_works_and_is_reproducible(client):
    a = chat(client, max_tokens=4, n=3, seed=2**64 - 1, temperature=1.0)
    b = chat(client, max_tokens=4, n=3, seed=2**64 - 1, temperature=1.0)
    assert a.status_code == 200, a.text
    assert [c["message"] for c in a.json()["choices"]] == [c["message"] for c in b.json()["choices"]]


def test_generator_seed_reduces_any_integer_deterministically():
    import torch

    for seed in (0, 2**64 - 1, 2**64, 2**200, -1, -(2**70)):
        s = generator_seed(seed)
        assert 0 <= s < 2**64 and s == generator_seed(seed)
        torch.Generator().manual_seed(s)  # never raises


def test_bad_request_among_concurrent_good_ones_does_not_hurt_them(client):
    bodies = [{"max_tokens": 4, "temperature": 0}] * 5 + [{"max_tokens": 4, "seed": 2**200}]
    with ThreadPoolExecutor(len(bodies)) as pool:
        answers = list(pool.map(lambda b: chat(client, **b), bodies))
    assert [r.status_code for r in answers] == [200] * 5 + [400]
    assert len({r.json()["choices"][0]["message"]["content"] for r in answers[:5]}) == 1


@pytest.mark.parametrize("route,body,param", [
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "\ud800 abc"}]}, "messages.0.content"),
    ("/v1/completions", {"prompt": "ab\udfffc"}, "prompt"),
    ("/v1/completions", {"prompt": "ok", "stop": ["\ud83d"]}, "stop"),
    ("/v1/embeddings", {"input": ["fine", "\ud800"]}, "input"),
])
def test_lone_surrogate_is_a_400_naming_the_field(client, route, body, param):
    raw = json.dumps({"model": MODEL, **body})  # ASCII escapes, as a client's JSON library writes them
    err = assert_openai_error(client.post(route, content=raw, headers={"content-type": "application/json"}), 400)
    assert err["param"].startswith(param) and "surrogate" in err["message"]


def test_paired_surrogates_are_ordinary_text(client):
    r = client.post("/v1/chat/completions", content='{"model": "%s", "max_tokens": 2, "messages": '
                    '[{"role": "user", "content": "\\ud83d\\ude00 hi"}]}' % MODEL,
                    headers={"content-type": "application/json"})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_are_refused(client, value):
    body = '{"model": "%s", "messages": [{"role": "user", "content": "hi"}], "temperature": %s}' % (MODEL, value)
    r = client.post("/v1/chat/completions", content=body, headers={"content-type": "application/json"})
    assert_openai_error(r, 400, param="temperature")


def test_request_larger_than_the_whole_queue_is_a_400_not_a_503(engine):
    from fastapi.testclient import TestClient

    from zhllama.serve.config import ApiSettings
    from zhllama.serve.openai import create_app

    app = create_app(engine, ApiSettings(model_name=MODEL, max_queue=16, max_tokens=2))
    with TestClient(app) as c:
        r = c.post("/v1/completions", json={"model": MODEL, "prompt": ["x"] * 5, "n": 4})
        err = assert_openai_error(r, 400, param="n", code="request_too_large")
        assert "20" in err["message"] and "16" in err["message"]
        assert c.post("/v1/completions", json={"model": MODEL, "prompt": ["x"] * 4, "n": 4}).status_code == 200


def test_auth_is_checked_before_the_body_is_parsed(engine):
    from fastapi.testclient import TestClient

    from zhllama.serve.config import ApiSettings
    from zhllama.serve.openai import create_app

    app = create_app(engine, ApiSettings(model_name=MODEL, api_key="k", max_tokens=2))
    with TestClient(app) as c:
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            r = c.post("/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json",
                                                                              **headers})
            assert_openai_error(r, 401, code="invalid_api_key")
            assert r.headers["www-authenticate"] == "Bearer"
        ok = {"Authorization": "Bearer k", "content-type": "application/json"}
        assert_openai_error(c.post("/v1/chat/completions", content=b"{not json", headers=ok), 400)
        assert c.post("/v1/chat/completions", json={"model": MODEL, "messages": HI},
                      headers={"Authorization": "Bearer k"}).status_code == 200
        assert c.get("/health").status_code == 200 and c.get("/openapi.json").status_code == 200

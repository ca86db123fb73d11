"""`logprobs`, `top_logprobs` and `echo` over the OpenAI API, under both schedulers, streamed and not, and with
the official `openai` client: the numbers equal `eval ppl`'s and a teacher-forced forward pass."""

from __future__ import annotations

import json

import pytest
import torch

from zhllama.eval.ppl import score_ids, text_ids

MODEL = "tiny"
TEXT = "在农业生产中，土地是最主要的基本生产资料。The quick brown fox."


@pytest.fixture(scope="module", params=["continuous", "static"])
def api(request, engine):
    from fastapi.testclient import TestClient

    from zhllama.serve.config import ApiSettings
    from zhllama.serve.openai import create_app

    app = create_app(engine, ApiSettings(model_name=MODEL, max_prompt_tokens=300, max_tokens=8,
                                         scheduler=request.param))
    with TestClient(app) as c:
        yield c


def post(api, route: str, body: dict) -> dict:
    r = api.post(route, json={"model": MODEL, **body})
    assert r.status_code == 200, r.text
    return r.json()


def stream(api, route: str, body: dict) -> list[dict]:
    with api.stream("POST", route, json={"model": MODEL, "stream": True, **body}) as r:
        assert r.status_code == 200
        lines = [line[len("data: "):] for line in r.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    return [json.loads(x) for x in lines[:-1]]


def forced(model, ids: list[int]) -> torch.Tensor:
    with torch.inference_mode():
        return torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0].float(), -1)


def test_echo_with_max_tokens_0_scores_the_prompt_as_eval_ppl_does(api, engine):
    out = post(api, "/v1/completions", {"prompt": TEXT, "echo": True, "max_tokens": 0, "logprobs": 1})
    [choice] = out["choices"]
    lp = choice["logprobs"]
    ids = text_ids(engine.tokenizer, TEXT)
    assert choice["text"] == TEXT and choice["finish_reason"] == "length"
    assert out["usage"] == {"prompt_tokens": len(ids), "completion_tokens": 0, "total_tokens": len(ids)}
    assert len(lp["tokens"]) == len(ids) and lp["token_logprobs"][0] is None and lp["top_logprobs"][0] is None
    nll, _ = score_ids(engine.model, ids, context=len(ids), stride=len(ids))
    assert -sum(lp["token_logprobs"][1:]) == pytest.approx(nll, rel=1e-5, abs=1e-4)
    assert lp["text_offset"][0] == 0 and lp["text_offset"] == sorted(lp["text_offset"])
    for token, value, top in zip(lp["tokens"][1:], lp["token_logprobs"][1:], lp["top_logprobs"][1:]):
        assert token in top and top[token] == value and len(top) <= 2  # the best token, and the chosen one
        assert max(top.values()) >= value


def test_lm_eval_loglikelihood_request(api, engine):
    """lm-evaluation-harness's local-completions body: token-id prompts, max_tokens 1, logprobs 1, echo; it sums
    token_logprobs[ctxlen:-1] and calls a continuation greedy when each is the best of top_logprobs."""
    tok = engine.tokenizer
    question = tok("问题：中国的首都是哪里？答案：", add_special_tokens=False)["input_ids"]
    context = [tok.bos_token_id] + question
    pairs = [context + tok(c, add_special_tokens=False)["input_ids"] for c in ("北京", "上海市")]
    out = post(api, "/v1/completions", {"prompt": pairs, "max_tokens": 1, "logprobs": 1, "echo": True,
                                        "temperature": 0, "seed": 1234})
    for choice, ids in zip(sorted(out["choices"], key=lambda c: c["index"]), pairs):
        lp = choice["logprobs"]
        assert len(lp["token_logprobs"]) == len(ids) + 1  # the prompt, then the one generated token
        got = sum(lp["token_logprobs"][len(context):-1])
        rows = forced(engine.model, ids)
        want = sum(float(rows[j - 1, ids[j]]) for j in range(len(context), len(ids)))
        assert got == pytest.approx(want, abs=1e-4)
        greedy = all(v == max(t.values()) for v, t in zip(lp["token_logprobs"][len(context):-1],
                                                          lp["top_logprobs"][len(context):-1]))
        assert greedy == all(int(rows[j - 1].argmax()) == ids[j] for j in range(len(context), len(ids)))


def test_completion_logprobs_of_generated_tokens(api, engine):
    out = post(api, "/v1/completions", {"prompt": "人民日报", "max_tokens": 6, "logprobs": 3, "temperature": 0,
                                        "repetition_penalty": 1.0})
    [choice] = out["choices"]
    lp = choice["logprobs"]
    assert len(lp["tokens"]) == out["usage"]["completion_tokens"]
    prompt = text_ids(engine.tokenizer, "人民日报")
    rows = forced(engine.model, prompt + engine.generate([prompt], _greedy(6))[0].token_ids)
    for k, (value, top) in enumerate(zip(lp["token_logprobs"], lp["top_logprobs"])):
        assert value == pytest.approx(float(rows[len(prompt) - 1 + k].max()), abs=1e-4)  # greedy: the best token
        assert len(top) == 3 and max(top.values()) == value
    assert lp["text_offset"][0] == 0 and all(o <= len(choice["text"]) for o in lp["text_offset"])


def _greedy(n):
    from zhllama.infer.engine import SamplingParams

    return SamplingParams(max_new_tokens=n, temperature=0.0, repetition_penalty=1.0)


def test_chat_logprobs_and_top_logprobs(api):
    body = {"messages": [{"role": "user", "content": "你好"}], "max_tokens": 5, "temperature": 0,
            "repetition_penalty": 1, "logprobs": True, "top_logprobs": 2}
    out = post(api, "/v1/chat/completions", body)
    content = out["choices"][0]["logprobs"]["content"]
    assert len(content) == out["usage"]["completion_tokens"]
    for entry in content:
        assert set(entry) == {"token", "logprob", "bytes", "top_logprobs"} and len(entry["top_logprobs"]) == 2
        assert entry["top_logprobs"][0]["logprob"] == pytest.approx(entry["logprob"])  # greedy
        assert isinstance(entry["bytes"], list)
    plain = post(api, "/v1/chat/completions", {**body, "logprobs": False, "top_logprobs": None})
    assert plain["choices"][0]["logprobs"] is None
    assert plain["choices"][0]["message"] == out["choices"][0]["message"]


def test_streamed_logprobs_equal_the_whole_answer(api):
    body = {"prompt": ["人民", "北京"], "max_tokens": 5, "logprobs": 2, "echo": True, "temperature": 0, "n": 2}
    whole = post(api, "/v1/completions", body)["choices"]
    chunks = stream(api, "/v1/completions", body)
    for choice in whole:
        mine = [c["choices"][0] for c in chunks if c["choices"][0]["index"] == choice["index"]]
        assert "".join(m["text"] for m in mine) == choice["text"]
        joined = {k: sum((m["logprobs"][k] for m in mine), []) for k in choice["logprobs"]}
        assert joined == choice["logprobs"]
    chat = {"messages": [{"role": "user", "content": "你好"}], "max_tokens": 5, "temperature": 0, "logprobs": True,
            "top_logprobs": 1}
    whole_chat = post(api, "/v1/chat/completions", chat)["choices"][0]["logprobs"]["content"]
    parts = [c["choices"][0]["logprobs"] for c in stream(api, "/v1/chat/completions", chat)
             if c["choices"] and c["choices"][0]["logprobs"]]
    assert sum((p["content"] for p in parts), []) == whole_chat


@pytest.mark.parametrize("route,body,param", [
    ("/v1/completions", {"prompt": "x", "logprobs": 21}, "logprobs"),
    ("/v1/completions", {"prompt": "x", "logprobs": -1}, "logprobs"),
    ("/v1/completions", {"prompt": "x", "max_tokens": 0}, "max_tokens"),
    ("/v1/completions", {"prompt": "x", "max_tokens": -1, "echo": True}, "max_tokens"),
    ("/v1/completions", {"prompt": [1, 99999]}, "prompt"),
    ("/v1/completions", {"prompt": [[1, 5], [-3]]}, "prompt"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "logprobs": True, "top_logprobs": 21},
     "top_logprobs"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "top_logprobs": 2}, "top_logprobs"),
])
def test_bad_logprob_requests_are_400_naming_the_field(api, route, body, param):
    r = api.post(route, json={"model": MODEL, **body})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"].split(".")[0] == param


def test_token_id_prompts_are_used_as_given(api, engine):
    ids = engine.tokenizer("人民日报", add_special_tokens=False)["input_ids"]  # no BOS: none is added
    out = post(api, "/v1/completions", {"prompt": ids, "echo": True, "max_tokens": 0, "logprobs": 0})
    lp = out["choices"][0]["logprobs"]
    assert out["usage"]["prompt_tokens"] == len(ids) == len(lp["tokens"])
    assert out["choices"][0]["text"] == "人民日报"


def test_official_openai_client(api, engine):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url="http://testserver/v1", api_key="unused", http_client=api)
    done = client.completions.create(model=MODEL, prompt=TEXT, echo=True, max_tokens=0, logprobs=1)
    lp = done.choices[0].logprobs
    nll, _ = score_ids(engine.model, text_ids(engine.tokenizer, TEXT), 10_000, 10_000)
    assert lp.token_logprobs[0] is None and -sum(lp.token_logprobs[1:]) == pytest.approx(nll, rel=1e-5, abs=1e-4)
    chat = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "你好"}], max_tokens=4,
                                          temperature=0, logprobs=True, top_logprobs=3)
    content = chat.choices[0].logprobs.content
    assert content and all(len(c.top_logprobs) == 3 for c in content)
    streamed = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "你好"}],
                                              max_tokens=4, temperature=0, logprobs=True, top_logprobs=3, stream=True)
    got = [c for chunk in streamed if chunk.choices and chunk.choices[0].logprobs
           for c in chunk.choices[0].logprobs.content]
    assert [(c.token, round(c.logprob, 5)) for c in got] == [(c.token, round(c.logprob, 5)) for c in content]

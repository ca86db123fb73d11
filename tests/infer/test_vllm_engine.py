"""``--engine vllm``: greedy parity with zhllama's own engine (skipped when vLLM is not installed).

Run with ``make test-vllm`` (it builds vLLM's own virtual environment first; see docs/serve.md).
The model is written by ``zhllama model init`` with head size 64 (vLLM's CPU attention kernels
take 32..256) and loaded in float32 by both engines.
"""

from __future__ import annotations

import os

import pytest
from engine_cases import CHATS, TEXTS, vllm_engine_pair

vllm = pytest.importorskip("vllm")

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB; vLLM's CPU default reserves much more


@pytest.fixture(scope="module")
def model_dir(tiny_tokenizer_dir, tmp_path_factory):
    from zhllama.meta import write_meta
    from zhllama.model.init import InitConfig, init_model
    from zhllama.tokenizer.chat import set_chat_template

    out = tmp_path_factory.mktemp("vllm") / "model"
    init_model(InitConfig(tokenizer=str(tiny_tokenizer_dir), out=str(out), hidden_size=128, layers=2, heads=2,
                          kv_heads=1, intermediate_size=256, max_position=512, seed=0))
    write_meta(out, template="llama2-zh")  # a template with a system block and BOS between turns
    set_chat_template(out, "llama2-zh")  # the folder's Jinja template follows, as after `zhllama train sft`
    return out


@pytest.fixture(scope="module")
def engines(model_dir):
    """(zhllama's engine, the vLLM engine) on the same folder."""
    yield from vllm_engine_pair(model_dir)


def _greedy(max_new_tokens=24, **kw):
    from zhllama.infer.sampling import SamplingParams

    return SamplingParams(max_new_tokens=max_new_tokens, temperature=0.0, **kw)


def _same(a, b):
    assert [(c.token_ids, c.text, c.finish_reason, c.prompt_tokens, c.completion_tokens) for c in a] == \
           [(c.token_ids, c.text, c.finish_reason, c.prompt_tokens, c.completion_tokens) for c in b]


def test_vllms_chat_template_gives_zhllamas_prompt_ids(engines):
    """vLLM's own templating (the folder's Jinja chat_template, its tokenizer) prompts exactly as zhllama does:
    BOS is id 1, not the text '<s>'."""
    ours, theirs = engines
    tokenizer = theirs.llm.get_tokenizer()
    for messages in CHATS:
        ids = ours.chat_prompt(messages)
        assert ids[0] == ours.tokenizer.bos_token_id == 1
        rendered = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        assert list(rendered["input_ids"] if hasattr(rendered, "keys") else rendered) == ids  # transformers 5: a dict
        assert theirs.chat_prompt(messages) == ids
    for text in TEXTS:
        assert [1] + tokenizer.encode(text, add_special_tokens=False) == ours.text_prompt(text)


@pytest.mark.parametrize("penalty", [1.0, 1.1])
def test_chat_greedy_replies_equal_zhllamas_engine(engines, penalty):
    ours, theirs = engines
    prompts = [ours.chat_prompt(m) for m in CHATS]
    _same(ours.generate(prompts, _greedy(repetition_penalty=penalty)),
          theirs.generate(prompts, _greedy(repetition_penalty=penalty)))


def test_completion_greedy_text_equals_zhllamas_engine(engines):
    ours, theirs = engines
    prompts = [ours.text_prompt(t) for t in TEXTS]
    mine = ours.generate(prompts, _greedy(32, repetition_penalty=1.0))
    _same(mine, theirs.generate(prompts, _greedy(32, repetition_penalty=1.0)))
    assert any(c.finish_reason == "length" for c in mine)


def test_a_stop_string_ends_the_vllm_request_where_zhllama_ends(engines):
    ours, theirs = engines
    prompt = ours.text_prompt(TEXTS[0])
    full = ours.generate([prompt], _greedy(32, repetition_penalty=1.0))[0].text
    stop = full[len(full) // 2:][:2]  # a piece of the greedy reply's second half
    params = _greedy(32, repetition_penalty=1.0, stop=(stop,))
    a, b = ours.generate([prompt], params)[0], theirs.generate([prompt], params)[0]
    assert b.finish_reason == "stop" and stop not in b.text
    _same([a], [b])


def test_server_on_vllm_keeps_routes_auth_and_answers(engines):
    from fastapi.testclient import TestClient

    from zhllama.serve.config import ApiSettings
    from zhllama.serve.openai import create_app

    answers = []
    for engine in engines:
        with TestClient(create_app(engine, ApiSettings(model_name="tiny", api_key="k"))) as client:
            assert client.post("/v1/chat/completions", json={"model": "tiny", "messages": CHATS[0]}).status_code == 401
            auth = {"Authorization": "Bearer k"}
            body = {"model": "tiny", "messages": CHATS[0], "temperature": 0, "max_tokens": 16}
            chat = client.post("/v1/chat/completions", json=body, headers=auth).json()
            text = client.post("/v1/completions", headers=auth, json={"model": "tiny", "prompt": TEXTS[0],
                                                                      "temperature": 0, "max_tokens": 16}).json()
            answers.append((chat["choices"][0]["message"]["content"], chat["usage"], text["choices"][0]["text"],
                            text["usage"], client.get("/health", headers=auth).status_code))
    assert answers[0] == answers[1]


def _step(batch, texts: dict, times: int = 1) -> None:
    """Run ``times`` steps (or until the batch is empty), adding each delta to ``texts`` by request number."""
    for _ in range(times):
        for number, delta, _, _ in batch.step():
            texts[number] = texts.get(number, "") + delta
        if not len(batch):
            return


def test_continuous_batch_joins_midway_and_cancels_as_zhllamas(engines):
    """The server's continuous scheduler on vLLM: a request that joins after others started, and one
    cancelled, leave the rest with the replies zhllama's own running batch gives."""
    ours, theirs = engines
    prompts = [ours.chat_prompt(m) for m in CHATS]
    replies = []
    for engine in engines:
        batch, texts = engine.open_batch(), {}
        first = [batch.add(p, _greedy(repetition_penalty=1.0)) for p in prompts[:2]]
        _step(batch, texts, 3)
        gone = batch.add(prompts[0], _greedy(repetition_penalty=1.0))
        late = batch.add(prompts[2], _greedy(repetition_penalty=1.0))
        _step(batch, texts)
        batch.cancel(gone)
        _step(batch, texts, 1000)
        assert not len(batch)
        replies.append([texts[n] for n in [*first, late]])
    assert replies[0] == replies[1]
    assert replies[1][:2] == [c.text for c in theirs.generate(prompts[:2], _greedy(repetition_penalty=1.0))]

def test_guidance_is_refused_on_vllm(engines):
    from zhllama.errors import ZhllamaError

    _, theirs = engines
    with pytest.raises(ZhllamaError, match="classifier-free guidance"):
        theirs.open_batch().add(theirs.text_prompt(TEXTS[0]), _greedy(guidance_scale=1.5))


def test_logprobs_and_echo_over_the_api_equal_zhllamas(engines):
    """vLLM's prompt_logprobs/logprobs come back in the same shapes, with the same numbers (vLLM's default
    raw_logprobs), token strings and offsets as zhllama's own engine: echo with max_tokens 0 (scoring), echo while
    generating, and chat top_logprobs."""
    from fastapi.testclient import TestClient

    from zhllama.serve.config import ApiSettings
    from zhllama.serve.openai import create_app

    bodies = [("/v1/completions", {"prompt": TEXTS[0], "echo": True, "max_tokens": 0, "logprobs": 2}),
              ("/v1/completions", {"prompt": [TEXTS[1], TEXTS[2]], "echo": True, "max_tokens": 4, "logprobs": 1,
                                   "temperature": 0, "repetition_penalty": 1.0}),
              ("/v1/chat/completions", {"messages": CHATS[0], "max_tokens": 6, "temperature": 0, "logprobs": True,
                                        "top_logprobs": 3, "repetition_penalty": 1.0})]
    answers = []
    for engine in engines:
        with TestClient(create_app(engine, ApiSettings(model_name="tiny"))) as client:
            answers.append([client.post(route, json={"model": "tiny", **body}).json() for route, body in bodies])
    for ours, theirs in zip(*answers):
        assert "choices" in ours and "choices" in theirs, (ours, theirs)
        assert len(ours["choices"]) == len(theirs["choices"])
        for a, b in zip(ours["choices"], theirs["choices"]):
            assert a.get("text", a.get("message")) == b.get("text", b.get("message"))
            la, lb = a["logprobs"], b["logprobs"]
            if "content" in la:
                la, lb = la["content"], lb["content"]
                assert [e["token"] for e in la] == [e["token"] for e in lb]
                assert [e["logprob"] for e in la] == pytest.approx([e["logprob"] for e in lb], abs=1e-3)
                assert [[t["token"] for t in e["top_logprobs"]] for e in la] == \
                       [[t["token"] for t in e["top_logprobs"]] for e in lb]
                continue
            assert la["tokens"] == lb["tokens"] and la["text_offset"] == lb["text_offset"]
            assert la["token_logprobs"][0] is None is lb["token_logprobs"][0]
            assert la["token_logprobs"][1:] == pytest.approx(lb["token_logprobs"][1:], abs=1e-3)
            assert [sorted(t) if t else t for t in la["top_logprobs"]] == \
                   [sorted(t) if t else t for t in lb["top_logprobs"]]

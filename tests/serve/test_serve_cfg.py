"""CFG over HTTP: guidance_scale and negative_prompt as extra body fields of chat and text completions."""

from __future__ import annotations

import pytest

from zhllama.infer.engine import SamplingParams

from test_serve_api import HI, MODEL, assert_openai_error, chat

NEG = "回答要简短"


def test_chat_with_a_negative_prompt_equals_the_engine(client, engine):
    params = SamplingParams(max_new_tokens=8, temperature=0, guidance_scale=2.5, negative_prompt=NEG)
    expected = engine.generate([engine.chat_prompt(HI, 8)], params, negatives=[engine.negative_chat_prompt(HI, params)])
    plain = chat(client, max_tokens=8, temperature=0).json()["choices"][0]["message"]["content"]
    r = chat(client, max_tokens=8, temperature=0, guidance_scale=2.5, negative_prompt=NEG)
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == expected[0].text != plain


def test_completion_negative_prompt_is_raw_text_and_scale_one_is_plain(client, engine):
    body = {"model": MODEL, "prompt": "北京", "max_tokens": 8, "temperature": 0}
    params = SamplingParams(max_new_tokens=8, temperature=0, guidance_scale=2.0, negative_prompt=NEG)
    expected = engine.generate([engine.text_prompt("北京")], params)[0].text  # the negative prompt as raw text
    guided = client.post("/v1/completions", json={**body, "guidance_scale": 2.0, "negative_prompt": NEG}).json()
    assert guided["choices"][0]["text"] == expected
    plain = client.post("/v1/completions", json=body).json()["choices"][0]["text"]
    same = client.post("/v1/completions", json={**body, "guidance_scale": 1.0, "negative_prompt": NEG}).json()
    assert same["choices"][0]["text"] == plain


@pytest.mark.parametrize("body,param", [({"guidance_scale": 0}, "guidance_scale"),
                                        ({"guidance_scale": -1.5}, "guidance_scale"),
                                        ({"guidance_scale": "strong"}, "guidance_scale"),
                                        ({"negative_prompt": 12}, "negative_prompt")])
def test_bad_cfg_fields_are_a_400_naming_the_field(client, body, param):
    assert_openai_error(chat(client, max_tokens=2, **body), 400, param=param)


@pytest.mark.parametrize("value", ["NaN", "Infinity"])
def test_non_finite_guidance_scale_is_a_400(client, value):
    raw = '{"model": "%s", "prompt": "x", "guidance_scale": %s}' % (MODEL, value)
    r = client.post("/v1/completions", content=raw, headers={"content-type": "application/json"})
    assert_openai_error(r, 400, param="guidance_scale")


def test_over_long_negative_prompt_is_a_400_naming_it(client):
    r = chat(client, max_tokens=4, guidance_scale=2.0, negative_prompt="人民日报 " * 400)
    assert_openai_error(r, 400, param="negative_prompt", code="context_length_exceeded")

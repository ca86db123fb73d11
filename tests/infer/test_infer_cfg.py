"""Classifier-free guidance (CFG) with a negative prompt: equal to transformers' generate, per request in a batch."""

from __future__ import annotations

import math

import pytest
import torch

from zhllama.errors import ZhllamaError
from zhllama.infer.engine import SamplingParams

TEXTS = ["Return the value of", "你好，世界", "The quick brown fox"]
NEGATIVE = "人民日报 北京"


def hf_cfg(engine, prompt, negative, scale, n, penalty=1.0):
    """transformers' model.generate with its CFG processor (UnbatchedClassifierFreeGuidanceLogitsProcessor)."""
    kwargs = {"negative_prompt_ids": torch.tensor([negative])} if negative is not None else {}
    out = engine.model.generate(torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                                max_new_tokens=n, do_sample=False, guidance_scale=scale,
                                repetition_penalty=penalty, pad_token_id=0, **kwargs)
    row = out[0, len(prompt):].tolist()
    eos = engine.tokenizer.eos_token_id
    return row[:row.index(eos)] if eos in row else row


@pytest.mark.parametrize("penalty", [1.0, 1.3])
def test_cfg_greedy_equals_transformers_generate_per_request_in_a_batch(tiny_engine, penalty):
    e = tiny_engine
    prompts = [e.text_prompt(t) for t in TEXTS]
    negative = e.text_prompt(NEGATIVE)
    params = [SamplingParams(max_new_tokens=16, temperature=0, repetition_penalty=penalty, guidance_scale=3.0,
                             negative_prompt=NEGATIVE),
              SamplingParams(max_new_tokens=16, temperature=0, repetition_penalty=penalty),  # no CFG
              SamplingParams(max_new_tokens=16, temperature=0, repetition_penalty=penalty, guidance_scale=1.7)]
    out = [c.token_ids for c in e.generate(prompts, params)]
    assert out[0] == hf_cfg(e, prompts[0], negative, 3.0, 16, penalty)  # negative prompt as raw text
    assert out[1] == e.generate([prompts[1]], params[1])[0].token_ids
    assert out[2] == hf_cfg(e, prompts[2], None, 1.7, 16, penalty)  # no negative prompt: the last token
    plain = e.generate([prompts[0]], SamplingParams(max_new_tokens=16, temperature=0, repetition_penalty=penalty))
    assert out[0] != plain[0].token_ids, "guidance changed nothing: the test would not see it broken"


def test_scale_one_is_exactly_plain_decoding(tiny_engine):
    e = tiny_engine
    prompts = [e.text_prompt(t) for t in TEXTS]
    for base in (SamplingParams(max_new_tokens=20, temperature=0), SamplingParams(max_new_tokens=20, seed=3)):
        with_cfg = SamplingParams(**{**base.__dict__, "guidance_scale": 1.0, "negative_prompt": NEGATIVE})
        assert [c.token_ids for c in e.generate(prompts, with_cfg)] == [c.token_ids for c in e.generate(prompts, base)]
    batch = e.open_batch()
    batch.add(prompts[0], SamplingParams(guidance_scale=1.0, negative_prompt=NEGATIVE))
    batch.add(prompts[1], SamplingParams(guidance_scale=2.0))
    batch.step()
    assert batch.rows == 3  # one unconditional row, for the guided request only


def test_negative_chat_prompt_replaces_the_system_prompt(tiny_engine):
    e = tiny_engine
    msgs = [{"role": "system", "content": "你是助手"}, {"role": "user", "content": "你好"}]
    p = SamplingParams(guidance_scale=1.5, negative_prompt="回答要粗鲁")
    want = e.chat_prompt([{"role": "system", "content": "回答要粗鲁"}, msgs[1]], p.max_new_tokens)
    assert e.negative_chat_prompt(msgs, p) == want == e.negative_chat_prompt(msgs[1:], p)
    assert e.negative_chat_prompt(msgs, SamplingParams(negative_prompt="x")) is None  # scale 1: no CFG
    assert e.negative_chat_prompt(msgs, SamplingParams(guidance_scale=2.0)) is None  # default: last token


@pytest.mark.parametrize("scale", [0.0, -1.0, math.nan, math.inf])
def test_bad_guidance_scale_is_a_clear_error(tiny_engine, scale):
    with pytest.raises(ZhllamaError, match="guidance_scale"):
        tiny_engine.generate([tiny_engine.text_prompt("x")], SamplingParams(guidance_scale=scale))


@pytest.mark.parametrize("value,problem", [("0", "greater than 0"), ("nan", "finite")])
def test_bad_guidance_scale_on_the_command_line_is_one_line(tmp_path, capsys, value, problem):
    from zhllama.cli import main

    (tmp_path / "in.txt").write_text("你好\n", encoding="utf-8")
    code = main(["generate", "--model", str(tmp_path / "no-model"), "--input", str(tmp_path / "in.txt"),
                 "--output", str(tmp_path / "out.jsonl"), "--guidance-scale", value])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--guidance-scale" in err[0] and problem in err[0], err

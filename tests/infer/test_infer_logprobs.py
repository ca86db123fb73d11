"""Token log-probabilities from the engine: prompt scoring equals `eval ppl`, generated tokens equal a
teacher-forced forward pass, and a request that asks for none costs nothing."""

from __future__ import annotations

import math

import pytest
import torch

from zhllama.eval.ppl import score_ids, text_ids
from zhllama.infer import logprobs as L
from zhllama.infer.engine import SamplingParams
from zhllama.infer.logprobs import LogprobRequest, TokenNames, text_offsets

TEXT = "在农业生产中，土地是最主要的基本生产资料。The quick brown fox jumps over the lazy dog."


def greedy(n: int) -> SamplingParams:
    return SamplingParams(max_new_tokens=n, temperature=0.0, repetition_penalty=1.0)


def forced_logprobs(model, ids: list[int]) -> torch.Tensor:
    """log_softmax at every position of one unpadded forward pass over ``ids`` (row j predicts ids[j + 1])."""
    with torch.inference_mode():
        return torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0].float(), -1)


def test_prompt_scoring_equals_eval_ppl(tiny_engine):
    ids = text_ids(tiny_engine.tokenizer, TEXT)
    log = LogprobRequest(top=3, prompt=True, generate=False)
    out = list(tiny_engine.stream([ids], greedy(4), logprobs=[log]))
    assert out == [(0, "", "length")]  # scored, nothing generated
    entries = log.prompt_entries
    assert [e.id for e in entries] == ids and entries[0].logprob is None and entries[0].top is None
    nll, n = score_ids(tiny_engine.model, ids, context=len(ids), stride=len(ids))
    assert n == len(ids) - 1
    assert -sum(e.logprob for e in entries[1:]) == pytest.approx(nll, rel=1e-5, abs=1e-4)
    for e in entries[1:]:  # top-3, best first; the chosen token's value is at most the best one
        assert len(e.top) == 3 and e.top[0][2] >= e.top[1][2] >= e.top[2][2] >= e.logprob - 1e-6
    assert log.prompt_text == TEXT


def test_generated_logprobs_equal_a_teacher_forced_pass(tiny_engine):
    prompt = text_ids(tiny_engine.tokenizer, "人民日报")
    log = LogprobRequest(top=2)
    [done] = tiny_engine.generate([prompt], greedy(6))
    list(tiny_engine.stream([prompt], greedy(6), logprobs=[log]))
    generated = [e.id for e in log.entries]
    ended = [] if done.finish_reason == "length" else [tiny_engine.tokenizer.eos_token_id]
    assert generated == done.token_ids + ended  # the EOS that ends it is listed too, as vLLM lists it
    forced = forced_logprobs(tiny_engine.model, prompt + generated)
    for k, e in enumerate(log.entries):
        row = forced[len(prompt) - 1 + k]
        assert e.logprob == pytest.approx(float(row[e.id]), abs=1e-4)
        assert e.top[0][2] == pytest.approx(e.logprob, abs=1e-6)  # greedy: the chosen token is the best one
        assert e.top[0][0] == e.token


def test_echo_while_generating_in_a_continuous_batch(tiny_engine):
    """A request that echoes joins a running batch: its prompt entries and tokens are what it gets alone."""
    tok = tiny_engine.tokenizer
    running, joining = text_ids(tok, "今天天气很好"), text_ids(tok, TEXT)
    alone = LogprobRequest(top=1, prompt=True)
    list(tiny_engine.stream([joining], greedy(3), logprobs=[alone]))
    batch = tiny_engine.open_batch()
    batch.add(running, greedy(8))
    batch.step()
    batch.step()
    log = LogprobRequest(top=1, prompt=True)
    number = batch.add(joining, greedy(3), logprobs=log)
    while number in batch.requests:
        batch.step()
    while len(batch):
        batch.step()
    assert [e.id for e in log.prompt_entries] == [e.id for e in alone.prompt_entries]
    assert [e.id for e in log.entries] == [e.id for e in alone.entries]
    for a, b in zip(log.prompt_entries[1:] + log.entries, alone.prompt_entries[1:] + alone.entries):
        assert a.logprob == pytest.approx(b.logprob, abs=1e-4)


def test_a_request_without_logprobs_pays_nothing(tiny_engine, monkeypatch):
    """No log-softmax/top-k for a request that asks for none, and no full-prompt logits for its prefill,
    even in a batch with one that asks for both."""
    calls, keeps = [], []
    real_rows, real_forward = L.position_logprobs, type(tiny_engine)._forward
    monkeypatch.setattr("zhllama.infer.batch.position_logprobs",
                        lambda logits, targets, top: calls.append(len(targets)) or real_rows(logits, targets, top))
    monkeypatch.setattr(type(tiny_engine), "_forward",
                        lambda self, *a, keep=1: keeps.append(keep) or real_forward(self, *a, keep=keep))
    tok = tiny_engine.tokenizer
    plain = text_ids(tok, "人民日报")
    list(tiny_engine.stream([plain, plain], greedy(5)))
    assert calls == [] and set(keeps) == {1}
    keeps.clear()
    log = LogprobRequest(top=2, prompt=True)
    list(tiny_engine.stream([plain, plain], greedy(5), logprobs=[None, log]))
    assert calls == [1] * 5  # one row per decode step: the echoing request's, never the plain one's
    assert keeps.count(0) == 1  # the echoing request's own prefill; the plain one kept the last position


def test_text_offsets_split_no_character(tiny_tokenizer):
    ids = tiny_tokenizer(TEXT, add_special_tokens=False)["input_ids"]
    text, offsets = text_offsets(tiny_tokenizer, ids)
    assert text == TEXT and offsets[0] == 0 and offsets == sorted(offsets)
    names = TokenNames(tiny_tokenizer)
    for k, i in enumerate(ids):  # a token that is not a lone byte is the text between its offset and the next
        token, raw = names(i)
        end = offsets[k + 1] if k + 1 < len(ids) else len(text)
        if not token.startswith("bytes:"):
            assert TEXT[offsets[k]:end] == token.lstrip(" ") if k == 0 else TEXT[offsets[k]:end] == token
            assert bytes(raw).decode() == token
        else:
            assert len(raw) == 1 and token == f"bytes:\\x{raw[0]:02x}"
    assert any(names(i)[0].startswith("bytes:") for i in ids)  # the text has characters outside the vocabulary


def test_logprob_of_a_sampled_token_is_the_raw_models(tiny_engine):
    """Temperature and top-k shape sampling, not the reported log-probabilities."""
    prompt = text_ids(tiny_engine.tokenizer, "人民")
    log = LogprobRequest(top=0)
    params = SamplingParams(max_new_tokens=4, temperature=1.5, top_k=5, seed=7, repetition_penalty=1.3)
    list(tiny_engine.stream([prompt], params, logprobs=[log]))
    forced = forced_logprobs(tiny_engine.model, prompt + [e.id for e in log.entries])
    for k, e in enumerate(log.entries):
        assert e.logprob == pytest.approx(float(forced[len(prompt) - 1 + k, e.id]), abs=1e-4)
        assert e.top == [] and math.isfinite(e.logprob)

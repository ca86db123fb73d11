"""Random request bodies never get a 5xx (a bounded property-based test of the OpenAI routes).

Each body is a valid request with up to two fields replaced by values of any kind a client can
send: huge and negative integers, NaN and infinities, lone surrogates, wrong types, empty lists.
So most examples reach the handlers and the batch (valid ones, and ones whose bad value only shows
there), and the rest test the validation.  Whatever comes, the answer is a 2xx or a 4xx in
OpenAI's error shape.
"""

from __future__ import annotations

import collections
import json

import pytest

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

MODEL = "tiny"

NUMBERS = st.one_of(st.integers(min_value=-(2**80), max_value=2**80), st.floats(allow_nan=True, allow_infinity=True),
                    st.sampled_from([0, 1, -1, 2**63, 2**64, 2**64 - 1, 0.5, 1e-9]))
TEXT = st.one_of(st.text(max_size=12), st.sampled_from(["\ud800 abc", "x\udfff", "你好", "</s>", "<s>", ""]))
ANY = st.one_of(NUMBERS, TEXT, st.booleans(), st.none(), st.lists(TEXT, max_size=3),
                st.lists(st.fixed_dictionaries({"role": TEXT, "content": TEXT}), max_size=2))
CLEAN_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=10)
SAMPLING = {"temperature": st.floats(0, 2), "top_p": st.floats(0.05, 1), "top_k": st.integers(0, 50),
            "repetition_penalty": st.floats(0.5, 2), "seed": st.integers(-(2**63), 2**64 - 1),
            "n": st.integers(1, 3), "stop": st.lists(CLEAN_TEXT, max_size=2), "stream": st.booleans(),
            "guidance_scale": st.floats(0.01, 10), "negative_prompt": CLEAN_TEXT}
FIELDS = ["model", "max_tokens", "messages", "prompt", "echo", "logprobs", "top_logprobs", *SAMPLING,
          "presence_penalty", "user"]


def _with_poison(valid: st.SearchStrategy) -> st.SearchStrategy:
    poison = st.dictionaries(st.sampled_from(FIELDS), ANY, max_size=2)
    return st.builds(lambda body, bad: {**body, **bad}, valid, poison)


CHAT = _with_poison(st.fixed_dictionaries(
    {"model": st.just(MODEL), "max_tokens": st.integers(1, 4),
     "messages": st.lists(st.fixed_dictionaries({"role": st.just("user"), "content": CLEAN_TEXT}), min_size=1, max_size=1)},
    optional={**SAMPLING, "logprobs": st.booleans(), "top_logprobs": st.integers(0, 3)}))
COMPLETION = _with_poison(st.fixed_dictionaries(
    {"model": st.just(MODEL), "max_tokens": st.integers(0, 4),
     "prompt": st.one_of(CLEAN_TEXT, st.lists(CLEAN_TEXT, min_size=1, max_size=3),
                         st.lists(st.integers(0, 1199), min_size=1, max_size=4))},
    optional={**SAMPLING, "echo": st.booleans(), "logprobs": st.integers(0, 3)}))

SEEN: collections.Counter = collections.Counter()
# derandomize: the same 60 examples on every run, so CI is reproducible (a new random run found the
# subnormal-temperature 500 that infer/test_infer_engine.py now pins); raise max_examples locally to explore
RUNS = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _post(client, route: str, body: dict) -> None:
    raw = json.dumps(body, allow_nan=True)  # NaN/Infinity as Python's JSON writes them; surrogates as \\u escapes
    r = client.post(route, content=raw, headers={"content-type": "application/json"})
    SEEN[route, r.status_code // 100] += 1
    assert r.status_code < 500, r.text
    if r.status_code >= 400:
        assert set(r.json()["error"]) == {"message", "type", "param", "code"}


@RUNS
@given(body=CHAT)
def test_random_chat_requests_never_get_a_5xx(client, body):
    _post(client, "/v1/chat/completions", body)


@RUNS
@given(body=COMPLETION)
def test_random_completion_requests_never_get_a_5xx(client, body):
    _post(client, "/v1/completions", body)


def test_the_random_requests_reached_the_handlers():
    """Both outcomes occurred for both routes, so the property was tested on answered requests too."""
    if not SEEN:
        pytest.skip("runs after the two property tests of this module")
    for route in ("/v1/chat/completions", "/v1/completions"):
        assert SEEN[route, 2] >= 5 and SEEN[route, 4] >= 5, dict(SEEN)

"""Continuous batching in the engine: requests join a running batch between steps and leave it at once."""

from __future__ import annotations

from zhllama.infer.engine import SamplingParams

TEXTS = ["x", "The quick brown fox jumps over the lazy dog and the cat", "你好，世界", "Return the value of"]


def greedy(n: int) -> SamplingParams:
    return SamplingParams(max_new_tokens=n, temperature=0.0, repetition_penalty=1.3)


def alone(engine, prompt, params) -> list[int]:
    return engine.generate([prompt], params)[0].token_ids


def test_requests_joining_mid_decode_get_the_tokens_they_get_alone(tiny_engine):
    e = tiny_engine
    prompts = [e.text_prompt(t) for t in TEXTS]
    params = [greedy(20), greedy(4), greedy(16), SamplingParams(max_new_tokens=12, temperature=1.0, seed=5)]
    expected = [alone(e, p, q) for p, q in zip(prompts, params)]
    assert all(len(x) == q.max_new_tokens for x, q in zip(expected, params)), "the test needs no early EOS"

    batch = e.open_batch()
    reqs = {0: batch.request(batch.add(prompts[0], params[0]))}
    for _ in range(3):
        batch.step()
    # a prompt longer than the running rows (the running ones get left padding), then shorter ones
    for k in (1, 2, 3):
        reqs[k] = batch.request(batch.add(prompts[k], params[k]))
        before = reqs[0].generated
        batch.step()
        # the very next step is the newcomer's: prefilled, first token; the running one waits for it
        assert reqs[k].generated == 1 and reqs[0].generated == before
    widths = []
    while len(batch):
        batch.step()
        live = list(batch.requests.values())
        if live:  # the cache is as wide as the longest live row: the long prompt's columns leave with it
            widths.append(batch.width)
            assert batch.width == max(len(r.prompt) + r.generated - 1 for r in live)  # the last token: next step
    assert widths[-1] < len(prompts[1])
    assert [reqs[k].ids for k in range(4)] == expected  # greedy and seeded: as if each ran alone


def test_a_cancelled_request_leaves_the_cache_at_once(tiny_engine):
    e = tiny_engine
    prompts = [e.text_prompt(t) for t in TEXTS[:3]]
    expected = [alone(e, p, greedy(12)) for p in prompts]
    batch = e.open_batch()
    numbers = [batch.add(p, greedy(12)) for p in prompts]
    reqs = [batch.request(n) for n in numbers]
    batch.step()
    batch.step()
    assert batch.rows == 3
    batch.cancel(numbers[1])
    assert batch.rows == 2 and len(batch) == 2 and batch.cache.layers[0].keys.shape[0] == 2
    steps = 0
    while len(batch):
        assert all(n != numbers[1] for n, *_ in batch.step())
        steps += 1
    assert reqs[1].generated == 2 and steps == 10
    assert [reqs[0].ids, reqs[2].ids] == [expected[0], expected[2]]


def test_a_request_cancelled_before_its_first_step_never_runs(tiny_engine):
    batch = tiny_engine.open_batch()
    kept = batch.add(tiny_engine.text_prompt("x"), greedy(2))
    gone = batch.add(tiny_engine.text_prompt("y"), greedy(2))
    batch.cancel(gone)
    events = batch.step()
    assert batch.rows == 1 and {n for n, *_ in events} <= {kept}

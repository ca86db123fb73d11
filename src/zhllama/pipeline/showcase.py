"""What the eval stage generates: answers to the first held-out questions, a free-form
continuation, and the generation speed of the two pre-training arms (extended vs original
tokenizer).  Everything is greedy, through the one generation engine, so a re-run gives the same
text."""

from __future__ import annotations

import time

CONTINUATION_CHARS = 40


def _engine(model, tokenizer, template: str = "none"):
    from ..infer.engine import Engine

    return Engine(model, tokenizer, template=template)


def _greedy(max_new_tokens: int, repetition_penalty: float = 1.0):
    from ..infer.sampling import SamplingParams

    return SamplingParams(max_new_tokens=max_new_tokens, temperature=0.0, repetition_penalty=repetition_penalty)


def chinese_chars(text: str) -> int:
    from ..tokenizer.merge import CHINESE_CHAR

    return len(CHINESE_CHAR.findall(text))


def generate_chars(engine, prompt: str, n_chars: int, repetition_penalty: float = 1.0, count=len) -> tuple[str, float, int]:
    """Greedy continuation of ``prompt`` until ``count(text)`` reaches ``n_chars`` (or the end of
    text, or 8 tokens per character); returns (the text, seconds it took, tokens generated)."""
    ids = engine.text_prompt(prompt)
    room = max(1, engine.context_length - len(ids))
    text, counts = "", [0]
    start = time.perf_counter()
    stream = engine.stream([ids], _greedy(min(room, 8 * n_chars), repetition_penalty), token_counts=counts)
    for _, delta, _finish in stream:
        text += delta
        if count(text) >= n_chars:
            break
    stream.close()
    return text, time.perf_counter() - start, counts[0]


def chars_per_second(model, tokenizer, prompts: list[str], n_chars: int) -> dict:
    """Generation speed: greedy, the same prompts, until ``n_chars`` Chinese characters each, through
    the end of text (the engine's end-of-text ids are cleared, as vLLM's ``ignore_eos`` and llama-bench
    do: a barely trained model that stops after a few tokens would otherwise be timed on those few).

    Two measures: the tokens decoded per second, and the Chinese characters the model wrote per
    second (text in other scripts does not count, so a model that drifts into English or bytes that
    never complete a character is not rewarded).  The second depends on what a barely trained model
    writes; the first, times the characters per token of real text, is what a vocabulary buys."""
    engine = _engine(model, tokenizer)
    engine.eos_ids = set()
    generate_chars(engine, prompts[0], 2)  # warm-up, not timed
    chars, seconds, tokens = 0, 0.0, 0
    for p in prompts:
        text, s, n = generate_chars(engine, p, n_chars, count=chinese_chars)
        chars, seconds, tokens = chars + min(chinese_chars(text), n_chars), seconds + s, tokens + n
    return {"chars": chars, "tokens": tokens, "seconds": round(seconds, 3),
            "chars_per_second": round(chars / max(seconds, 1e-9), 1),
            "tokens_per_second": round(tokens / max(seconds, 1e-9), 1)}


def continuation(model, tokenizer, prompt: str) -> str:
    """A short free-form greedy continuation (a mild repetition penalty keeps a tiny model from looping)."""
    text, _, _ = generate_chars(_engine(model, tokenizer), prompt, CONTINUATION_CHARS, repetition_penalty=1.2)
    return text[:CONTINUATION_CHARS]


def answer(model, tokenizer, template: str, messages: list[dict]) -> str:
    """Greedy answer to a conversation (rendered with the chat template, as in training)."""
    engine = _engine(model, tokenizer, template)
    prompt = engine.chat_prompt(messages, max_new_tokens=32)
    (done,) = engine.generate([prompt], _greedy(32))
    return done.text.strip()


def showcase(model, tokenizer, template: str, records: list[dict]) -> list[dict]:
    """The given held-out records answered by the model, each marked right or wrong.

    The records are the first ones of the held-out file (fixed by the recipe before any answer is
    seen); an answer is right when it is exactly the expected label."""
    from ..templates import alpaca_record_to_messages

    out = []
    for r in records:
        reply = answer(model, tokenizer, template, alpaca_record_to_messages(r["instruction"], r.get("input", "")))
        out.append({"instruction": r["instruction"], "input": r.get("input", ""), "expected": r["output"],
                    "answer": reply, "correct": reply == r["output"], "task": r.get("task")})
    return out


def prompts_from(texts: list[str], n: int = 3, length: int = 12) -> list[str]:
    """Generation prompts: the opening characters of the first validation documents."""
    return [t.strip()[:length] for t in texts if t.strip()][:n]

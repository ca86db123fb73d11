"""`zhllama generate`: a file of prompts in, one JSON line per prompt out, resumable.

Every input has a key: its ``id`` field, else ``line N`` (its line number in the input).  Results
are appended to the output file and flushed one line at a time, so an interruption loses at most
the batch being decoded; a later run with the same output skips the keys already there (after
checking they were written for the same prompt) and drops a half-written last line.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import ZhllamaError
from ..templates import split_turns


@dataclass
class Item:
    key: str
    prompt: str  # the prompt, or the last user message of a conversation
    messages: list[dict] | None = None  # given in the input instead of a prompt


def read_inputs(path: str | Path, encoding: str = "utf-8") -> list[Item]:
    """Prompts from a .txt (one per line, blank lines skipped) or .jsonl (prompt or messages field) file."""
    from ..checks import read_text

    path = Path(path)
    text = read_text(path, encoding, "input file")
    if path.suffix.lower() == ".jsonl":
        items = [_jsonl_item(path, n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    else:
        items = [Item(f"line {n}", line.rstrip("\r")) for n, line in enumerate(text.split("\n"), 1) if line.strip()]
    if not items:
        raise ZhllamaError(f"{path}: no prompts", "give one prompt per line (.txt) or JSON lines with a 'prompt' field")
    keys = [i.key for i in items]
    if len(set(keys)) != len(keys):
        dup = next(k for k in keys if keys.count(k) > 1)
        raise ZhllamaError(f"{path}: id {dup!r} appears more than once", "give every input a unique 'id'")
    return items


def _jsonl_item(path: Path, n: int, line: str) -> Item:
    where = f"{path}:{n}"
    try:
        rec = json.loads(line)
    except ValueError as e:
        raise ZhllamaError(f"{where}: not valid JSON ({e.msg})", "write one JSON object per line") from None
    if not isinstance(rec, dict):
        raise ZhllamaError(f"{where}: expected a JSON object", 'e.g. {"prompt": "你好"}')
    key = str(rec["id"]) if rec.get("id") is not None else f"line {n}"
    if isinstance(rec.get("messages"), list):
        _, turns = split_turns(rec["messages"], where=f"{where} messages")
        if turns[-1].assistant is not None:
            raise ZhllamaError(f"{where}: the conversation ends with an assistant message", "end it with a user message")
        return Item(key, turns[-1].user, rec["messages"])
    if isinstance(rec.get("prompt"), str):
        return Item(key, rec["prompt"])
    raise ZhllamaError(f"{where}: needs a 'prompt' (text) or 'messages' (list) field", 'e.g. {"prompt": "你好"}')


def read_done(output: Path) -> dict[str, dict]:
    """Records already in ``output`` by key; a half-written last line (an interrupted run) is cut off."""
    if not output.exists():
        return {}
    data = output.read_bytes()
    if data and not data.endswith(b"\n"):
        data = data[: data.rfind(b"\n") + 1]
        with open(output, "r+b") as f:
            f.truncate(len(data))
    done = {}
    for n, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1):
        try:
            rec = json.loads(line)
            done[rec["id"]] = rec
        except (ValueError, KeyError, TypeError):
            raise ZhllamaError(f"{output}:{n}: not a zhllama generate result", "choose another --output or pass --overwrite") from None
    return done


def pending(items: list[Item], done: dict[str, dict], output: Path) -> list[Item]:
    """The inputs not answered yet; an answered key whose prompt changed is an error."""
    todo = []
    for item in items:
        rec = done.get(item.key)
        if rec is None:
            todo.append(item)
        elif rec.get("prompt") != item.prompt:
            raise ZhllamaError(f"{output} holds a result for {item.key!r} with a different prompt",
                               "the input changed since that run: choose another --output or pass --overwrite")
    return todo


def run_generate(engine, items: list[Item], output: str | Path, params, batch_size: int = 8, limit: int | None = None,
                 system: str | None = None, overwrite: bool = False) -> str:
    """Answer the pending items in batches, appending results to ``output``; return a summary line."""
    from tqdm import tqdm

    output = Path(output)
    if overwrite and output.exists():
        output.unlink()
    output.parent.mkdir(parents=True, exist_ok=True)
    done = read_done(output)
    todo = pending(items, done, output)[:limit]
    start, tokens, errors = time.perf_counter(), 0, 0
    with open(output, "a", encoding="utf-8") as out, tqdm(total=len(todo), unit="prompt", desc="generate") as bar:
        for b in range(0, len(todo), batch_size):
            for rec in _answer_batch(engine, todo[b:b + batch_size], params, system):
                out.write(json.dumps(rec, ensure_ascii=False) + "\n")
                out.flush()
                tokens += rec.get("completion_tokens", 0)
                errors += "error" in rec
            bar.update(len(todo[b:b + batch_size]))
    secs = time.perf_counter() - start
    return (f"answered {len(todo)} inputs ({len(done)} already in {output}, {errors} errors, "
            f"{len(items) - len(done) - len(todo)} left); {tokens} tokens in {secs:.1f}s "
            f"({tokens / max(secs, 1e-9):.1f} tokens/s){_speculative_note(engine)}")


def _speculative_note(engine) -> str:
    """How well the draft did, when speculative sampling ran (single-request batches)."""
    stats = engine.speculative_stats
    if not stats.rounds:
        return ""
    return (f"; draft: {stats.acceptance_rate:.0%} of proposed tokens accepted, "
            f"{stats.tokens_per_round:.2f} tokens per model pass")


def _answer_batch(engine, batch: list[Item], params, system: str | None) -> list[dict]:
    """Result records in input order; an input too long for the context gets an error record."""
    prompts, negatives, records = [], [], []
    for item in batch:
        rec = {"id": item.key, "prompt": item.prompt}
        if item.messages is not None:
            rec["messages"] = item.messages
        try:
            messages = _messages(item, system)
            prompts.append(engine.chat_prompt(messages, params.max_new_tokens))
            negatives.append(engine.negative_chat_prompt(messages, params))
        except ZhllamaError as e:
            rec["error"] = str(e)
            prompts.append(None)
            negatives.append(None)
        records.append(rec)
    live = [i for i, p in enumerate(prompts) if p is not None]
    done = engine.generate([prompts[i] for i in live], params, negatives=[negatives[i] for i in live])
    for i, c in zip(live, done):
        records[i].update(output=c.text, finish_reason=c.finish_reason, prompt_tokens=c.prompt_tokens,
                          completion_tokens=c.completion_tokens)
    return records


def _messages(item: Item, system: str | None) -> list[dict]:
    if item.messages is not None:
        msgs = list(item.messages)
        if system and msgs[0]["role"] != "system":
            msgs.insert(0, {"role": "system", "content": system})
        return msgs
    return ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": item.prompt}]

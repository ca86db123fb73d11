"""Preference data: (prompt, chosen, rejected) records -> token ids for ``train rm`` / ``dpo`` / ``ppo``.

Formats (``.json`` array, ``.jsonl`` one record per line, either gzipped):

* Alpaca-style: ``{"instruction", "input"?, "system"?, "chosen", "rejected"}`` or
  ``{"prompt", "system"?, "chosen", "rejected"}`` (``prompt`` is the user's text);
* ShareGPT: ``{"conversations": [... ending with the human turn], "chosen": ..., "rejected": ...}``;
* OpenAI: ``{"messages": [... ending with the user message], "chosen": ..., "rejected": ...}``.

``chosen`` / ``rejected`` are the two candidate last replies: text, or one message
(``{"from": "gpt", "value": ...}`` / ``{"role": "assistant", "content": ...}``).

The prompt and each reply are rendered by the one template registry
(:func:`zhllama.templates.encode_messages`) exactly as ``train sft`` renders the conversation that
ends with that reply: ``prompt_ids + chosen_ids`` are the SFT example's ids and ``chosen_ids`` are
its last reply's trainable tokens (the reply and its EOS).  Earlier assistant turns of a
multi-turn prompt belong to the prompt here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import ZhllamaError
from ..templates import alpaca_record_to_messages, chat_template_jinja, encode_messages, split_turns
from .instructions import (_sharegpt_messages, _text_field, check_build_arguments, column_counts, hold_out,
                           iter_converted, messages_type, read_report, response_spans, write_arrow)

FORMATS_HINT = ("give {prompt|instruction(+input), chosen, rejected}, or ShareGPT conversations / OpenAI messages "
                "ending with the user's turn plus chosen and rejected replies")


@dataclass(frozen=True)
class PreferencePair:
    """A prompt conversation (ending with the user's message) and two candidate replies."""

    prompt: list[dict]
    chosen: str
    rejected: str

    def conversation(self, reply: str) -> list[dict]:
        return [*self.prompt, {"role": "assistant", "content": reply}]


# ---------------------------------------------------------------- reading records

def _reply(obj: dict, name: str, where: str) -> str:
    """``chosen`` / ``rejected``: text or one assistant message."""
    if name not in obj or obj[name] is None:
        raise ZhllamaError(f"{where}: missing field '{name}'", FORMATS_HINT)
    value = obj[name]
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, dict):
        value = value.get("content", value.get("value"))
    if not isinstance(value, str):
        raise ZhllamaError(f"{where}: field '{name}' is not text", "give a string or one {role, content} message")
    return value


def _prompt_messages(obj: dict, where: str) -> list[dict]:
    if "messages" in obj:
        messages = obj["messages"]
        if not isinstance(messages, list):
            raise ZhllamaError(f"{where}: 'messages' is not a list", 'give [{"role": "user", "content": ...}, ...]')
        return [{"role": m.get("role"), "content": m.get("content")} if isinstance(m, dict) else m for m in messages]
    if "conversations" in obj:
        return _sharegpt_messages(obj["conversations"], where)
    system = _text_field(obj, "system", where, False) or None
    if "prompt" in obj:
        return alpaca_record_to_messages(_text_field(obj, "prompt", where), system=system)
    if "instruction" in obj:
        return alpaca_record_to_messages(_text_field(obj, "instruction", where), _text_field(obj, "input", where, False),
                                         system=system)
    raise ZhllamaError(f"{where}: missing field 'prompt' (or 'instruction', 'conversations', 'messages')", FORMATS_HINT)


def record_to_pair(obj, where: str) -> PreferencePair:
    """One record as a validated :class:`PreferencePair` (see the module docstring for formats)."""
    if isinstance(obj, json.JSONDecodeError):
        raise ZhllamaError(f"{where}: invalid JSON ({obj.msg})", "fix the line or pass --skip-bad")
    if not isinstance(obj, dict):
        raise ZhllamaError(f"{where}: expected a JSON object, got {type(obj).__name__}", "one object per record")
    prompt = _prompt_messages(obj, where)
    chosen, rejected = _reply(obj, "chosen", where), _reply(obj, "rejected", where)
    _, turns = split_turns(prompt, where)
    if turns[-1].assistant is not None:
        raise ZhllamaError(f"{where}: the prompt ends with an assistant message",
                           "end it with the user's turn; the two candidate replies go in chosen and rejected")
    if not turns[-1].user.strip():
        raise ZhllamaError(f"{where}: empty prompt", "give the user's text")
    for name, text in (("chosen", chosen), ("rejected", rejected)):
        if not text.strip():
            raise ZhllamaError(f"{where}: empty '{name}' reply", "both replies need text")
    if chosen == rejected:
        raise ZhllamaError(f"{where}: 'chosen' and 'rejected' are the same text", "a pair needs two different replies")
    return PreferencePair(prompt, chosen, rejected)


def load_pairs(files: list[str], skip_bad: bool = False) -> tuple[list[PreferencePair], dict]:
    """Read preference files -> ``(pairs, report)``.

    A bad record (invalid JSON, missing field, empty or identical replies, wrong role order) raises
    ``ZhllamaError`` naming the file and line (``.jsonl``) or record index (``.json``); with
    ``skip_bad`` it is skipped and counted.  Report: files, records, pairs, skipped, first_skipped.
    """
    if not files:
        raise ZhllamaError("no preference files given", "pass one or more .json/.jsonl files")
    stats: dict = {}
    pairs = list(iter_converted(files, "preference", record_to_pair, skip_bad, stats))
    return pairs, read_report(files, stats, "pairs", len(pairs), "preference pairs", FORMATS_HINT)


def check_pairs(files: list[str], skip_bad: bool = False) -> dict:
    """Validate every record as :func:`load_pairs` does, one at a time (memory does not grow with the files); the report."""
    stats: dict = {}
    count = sum(1 for _ in iter_converted(files, "preference", record_to_pair, skip_bad, stats))
    return read_report(files, stats, "pairs", count, "preference pairs", FORMATS_HINT)


# ---------------------------------------------------------------- encoding

def split_prompt_reply(tokenizer, template: str, pair: PreferencePair, reply: str) -> tuple[list[int], list[int]]:
    """``(prompt_ids, reply_ids)``: the SFT encoding of ``pair.prompt`` + ``reply``, cut where the last reply starts."""
    ids, mask = encode_messages(tokenizer, template, pair.conversation(reply), add_generation_prompt=False)
    start, _ = response_spans(mask)[-1]
    return ids[:start], ids[start:]


def fit_pair(prompt: list[int], chosen: list[int], rejected: list[int], max_length: int):
    """Cut both replies so prompt + reply fits ``max_length``, keeping each reply's last token (EOS).

    Returns None when the prompt leaves no room for a reply token before the EOS.
    """
    room = max_length - len(prompt)
    if room < 2:
        return None

    def cut(reply: list[int]) -> list[int]:
        return reply if len(reply) <= room else reply[:room - 1] + reply[-1:]

    return prompt, cut(chosen), cut(rejected)


def encode_pair(tokenizer, template: str, pair: PreferencePair, max_length: int) -> dict | None:
    """``{"prompt_ids", "chosen_ids", "rejected_ids", "truncated"}``, or None when the prompt alone is too long."""
    prompt, chosen = split_prompt_reply(tokenizer, template, pair, pair.chosen)
    prompt_r, rejected = split_prompt_reply(tokenizer, template, pair, pair.rejected)
    assert prompt == prompt_r, "a template rendered one prompt two ways"
    fitted = fit_pair(prompt, chosen, rejected, max_length)
    if fitted is None:
        return None
    p, c, r = fitted
    return {"prompt_ids": p, "chosen_ids": c, "rejected_ids": r, "truncated": (c, r) != (chosen, rejected)}


def _encode_batch(batch: dict, tokenizer, template: str, max_length: int) -> dict:
    out = {"prompt_ids": [], "chosen_ids": [], "rejected_ids": [], "status": []}
    for prompt, chosen, rejected in zip(batch["prompt"], batch["chosen"], batch["rejected"]):
        enc = encode_pair(tokenizer, template, PreferencePair(prompt, chosen, rejected), max_length)
        if enc is None:
            enc, status = {"prompt_ids": [], "chosen_ids": [], "rejected_ids": []}, "too_long"
        else:
            status = "truncated" if enc.pop("truncated") else "kept"
        for k, v in enc.items():
            out[k].append(v)
        out["status"].append(status)
    return out


def _build(files, tokenizer, template, max_length, validation_split, skip_bad, seed, work: Path):
    import pyarrow as pa
    from datasets import DatasetDict

    stats: dict = {}
    rows = ({"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected}
            for p in iter_converted(files, "preference", record_to_pair, skip_bad, stats))
    schema = pa.schema([("prompt", messages_type()), ("chosen", pa.string()), ("rejected", pa.string())])
    raw = write_arrow(rows, work / "records.arrow", schema)  # streamed: memory does not grow with the file
    read = read_report(files, stats, "pairs", len(raw), "preference pairs", FORMATS_HINT)
    encoded = raw.map(_encode_batch, batched=True, batch_size=500, remove_columns=raw.column_names,
                      desc="encoding preference pairs",
                      fn_kwargs={"tokenizer": tokenizer, "template": template, "max_length": max_length})
    status = column_counts(encoded, "status")
    kept = encoded.filter(lambda s: s != "too_long", input_columns="status").remove_columns("status")
    if len(kept) == 0:
        raise ZhllamaError(f"no preference pair left after encoding: every prompt is longer than max_length {max_length}",
                           "raise --max-length")
    split = hold_out(kept, validation_split, seed)
    report = {**read, "template": template, "max_length": max_length, "kept": len(kept),
              "truncated": status["truncated"], "dropped_too_long": status["too_long"],
              "train_pairs": len(split["train"]), "validation_pairs": len(split["test"])}
    return DatasetDict({"train": split["train"], "validation": split["test"]}), report


def build_preference_dataset(files: list[str], tokenizer, template: str, max_length: int,
                             validation_split: float = 0.0, skip_bad: bool = False, seed: int = 0,
                             cache_dir: str | None = None):
    """Encoded preference pairs -> ``(DatasetDict, report)``.

    ``train`` and ``validation`` (empty when ``validation_split`` is 0) have columns ``prompt_ids``,
    ``chosen_ids`` and ``rejected_ids`` (TRL's pre-tokenized preference columns); each reply ends
    with the template's EOS.  Cached like :func:`zhllama.data.instructions.build_sft_dataset`.
    Report: records, pairs, skipped, kept, truncated, dropped_too_long, train_pairs, validation_pairs.
    """
    from .corpora import cached_build, fingerprint

    files = check_build_arguments("preference", files, tokenizer, template, max_length, 3, validation_split, "0.05")
    key = fingerprint("preference", files, tokenizer, template=chat_template_jinja(tokenizer, template), max_length=max_length,
                      validation_split=validation_split, skip_bad=skip_bad, seed=seed)
    return cached_build("preference", key, cache_dir, lambda work: _build(
        files, tokenizer, template, max_length, validation_split, skip_bad, seed, work))


def build_prompt_dataset(files: list[str], tokenizer, skip_bad: bool = False, cache_dir: str | None = None):
    """The prompts of preference files (``train ppo`` samples its own replies) -> ``(DatasetDict, report)``.

    ``train`` has one column, ``prompt`` (a message list), streamed into an Arrow file and
    memory-mapped like the pairs, so memory does not grow with the files; ``validation`` is empty.
    The records are checked as :func:`load_pairs` checks them.  Cached like
    :func:`build_preference_dataset` (the tokenizer is part of the key only as every cache's is).
    Report: files, records, pairs, skipped, first_skipped.
    """
    from .corpora import cached_build, fingerprint

    if not files:
        raise ZhllamaError("no preference files given", "pass one or more .json/.jsonl files")
    key = fingerprint("prompts", files, tokenizer, skip_bad=skip_bad)
    return cached_build("prompts", key, cache_dir, lambda work: _build_prompts(files, skip_bad, work))


def _build_prompts(files, skip_bad: bool, work: Path):
    import pyarrow as pa
    from datasets import DatasetDict

    stats: dict = {}
    rows = ({"prompt": p.prompt} for p in iter_converted(files, "preference", record_to_pair, skip_bad, stats))
    raw = write_arrow(rows, work / "prompts.arrow", pa.schema([("prompt", messages_type())]))
    report = read_report(files, stats, "pairs", len(raw), "preference pairs", FORMATS_HINT)
    return DatasetDict({"train": raw, "validation": raw.select([])}), report


# ---------------------------------------------------------------- pairs from task data

def pairs_from_tasks(records: list[dict], seed: int = 0) -> list[dict]:
    """Preference records from labelled task records (``zhllama.data.tasks``: instruction, input, output, choices).

    The correct label is ``chosen`` and another of the record's ``choices`` (picked at random when
    there are more than two) is ``rejected``; ``task`` and ``split`` (dev and test records) are kept.  Use the training split only, so
    held-out accuracy still measures generalisation.
    """
    import random

    rng = random.Random(seed)
    out = []
    for i, r in enumerate(records):
        wrong = [c for c in r.get("choices") or [] if c != r.get("output")]
        if not wrong or "output" not in r:
            raise ZhllamaError(f"task record {i}: needs 'output' and 'choices' with another label",
                               "give records of zhllama.data.tasks (instruction, input, output, choices)")
        out.append({"instruction": r["instruction"], "input": r.get("input", ""), "chosen": r["output"],
                    "rejected": rng.choice(wrong), **{k: r[k] for k in ("task", "split") if k in r}})
    return out

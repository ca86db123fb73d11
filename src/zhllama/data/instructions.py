"""Instruction data: Alpaca and multi-turn conversations -> masked training examples.

Formats (``.json`` array, ``.jsonl`` one record per line, either gzipped):

* Alpaca: ``{"instruction", "input", "output"[, "system"]}`` (the input joins the instruction
  after a newline, as Chinese-Alpaca does);
* ShareGPT: ``{"conversations": [{"from": "human"|"gpt"|"system", "value": ...}, ...]}``;
* OpenAI: ``{"messages": [{"role": "system"|"user"|"assistant", "content": ...}, ...]}``.

Every record becomes an OpenAI-style message list and is encoded with
:func:`zhllama.templates.encode_messages`, the same path inference uses.  Labels are the ids on
response tokens (each assistant reply and its EOS) and -100 everywhere else.

Truncation to ``max_length`` never leaves a sample without a response token and never removes the
EOS that ends a kept response: when the limit falls inside a reply, the reply's body is cut and its
EOS kept; when it falls inside a later prompt, the later turns are dropped; a sample whose first
reply cannot start before the limit is dropped and counted.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from ..errors import ZhllamaError, require_file
from ..templates import alpaca_record_to_messages, chat_template_jinja, check_template_fits, split_turns
from ..text import iter_records

log = logging.getLogger(__name__)

IGNORE_INDEX = -100
FORMATS_HINT = "check the files' format (Alpaca, ShareGPT or OpenAI messages)"
SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                  "chatgpt": "assistant", "bard": "assistant", "bing": "assistant", "model": "assistant",
                  "system": "system"}


# ---------------------------------------------------------------- reading records

def _text_field(obj: dict, name: str, where: str, required: bool = True) -> str:
    if name not in obj or obj[name] is None:
        if required:
            raise ZhllamaError(f"{where}: missing field '{name}'", f"every Alpaca record needs instruction and output (found: {', '.join(list(obj)[:6])})")
        return ""
    value = obj[name]
    if not isinstance(value, str):
        raise ZhllamaError(f"{where}: field '{name}' is not text", "make it a string")
    return value


def _sharegpt_messages(turns, where: str) -> list[dict]:
    if not isinstance(turns, list):
        raise ZhllamaError(f"{where}: 'conversations' is not a list", 'give [{"from": "human", "value": ...}, ...]')
    out = []
    for i, t in enumerate(turns):
        if not isinstance(t, dict) or "from" not in t or "value" not in t:
            raise ZhllamaError(f"{where}: conversations[{i}] needs 'from' and 'value'", 'e.g. {"from": "human", "value": "你好"}')
        role = SHAREGPT_ROLES.get(str(t["from"]).lower())
        if role is None:
            raise ZhllamaError(f"{where}: conversations[{i}]: unknown speaker '{t['from']}'", "use human, gpt or system")
        out.append({"role": role, "content": t["value"]})
    return out


def record_to_messages(obj, where: str) -> list[dict]:
    """One record (Alpaca, ShareGPT or OpenAI) as a validated, complete training conversation."""
    if isinstance(obj, json.JSONDecodeError):
        raise ZhllamaError(f"{where}: invalid JSON ({obj.msg})", "fix the line or pass --skip-bad")
    if not isinstance(obj, dict):
        raise ZhllamaError(f"{where}: expected a JSON object, got {type(obj).__name__}", "one object per record")
    if "messages" in obj:
        messages = obj["messages"]
        if not isinstance(messages, list):
            raise ZhllamaError(f"{where}: 'messages' is not a list", 'give [{"role": "user", "content": ...}, ...]')
        messages = [{"role": m.get("role"), "content": m.get("content")} if isinstance(m, dict) else m for m in messages]
    elif "conversations" in obj:
        messages = _sharegpt_messages(obj["conversations"], where)
    elif "instruction" in obj or "output" in obj:
        messages = alpaca_record_to_messages(_text_field(obj, "instruction", where), _text_field(obj, "input", where, False),
                                             _text_field(obj, "output", where), _text_field(obj, "system", where, False) or None)
    else:
        raise ZhllamaError(f"{where}: not an instruction record (found fields: {', '.join(list(obj)[:6]) or 'none'})",
                           "give Alpaca (instruction/input/output), ShareGPT (conversations) or OpenAI (messages) records")
    _, turns = split_turns(messages, where)
    if turns[-1].assistant is None:
        raise ZhllamaError(f"{where}: the conversation ends with a user message", "training data must end with the assistant's reply")
    return messages


def load_conversations(files: list[str], skip_bad: bool = False) -> tuple[list[list[dict]], dict]:
    """Read instruction files -> ``(conversations, report)``.

    Each conversation is an OpenAI-style list of ``{"role", "content"}`` dicts: an optional
    system message, then user/assistant alternating, ending with an assistant reply.  A bad record
    (invalid JSON, missing field, wrong role order) raises ``ZhllamaError`` naming the file and
    line (``.jsonl``) or record index (``.json``); with ``skip_bad`` it is skipped and counted.
    Report: files, records, conversations, skipped, first_skipped (up to 5 reasons).
    """
    if not files:
        raise ZhllamaError("no instruction files given", "pass one or more .json/.jsonl files")
    stats: dict = {}
    conversations = list(iter_converted(files, "instruction", record_to_messages, skip_bad, stats))
    return conversations, read_report(files, stats, "conversations", len(conversations), "conversations", FORMATS_HINT)


def read_report(files: list, stats: dict, key: str, count: int, label: str, hint: str) -> dict:
    """The read part of a build report (``key``: how many ``label`` were read); raises when none was usable."""
    if not count:
        raise ZhllamaError(f"no usable {label} in {', '.join(map(str, files))} ({stats['records']} records, "
                           f"{stats['skipped']} skipped)", hint)
    return {"files": [str(f) for f in files], "records": stats["records"], key: count, "skipped": stats["skipped"],
            "first_skipped": stats["reasons"]}


def iter_converted(files: list[str], what: str, convert, skip_bad: bool, stats: dict):
    """``convert(record, where)`` over every record of ``files``, one at a time.

    ``stats`` receives records, skipped and reasons (the first 5), final once the iterator is
    exhausted.  A record ``convert`` rejects (``ZhllamaError``) stops the read, or with
    ``skip_bad`` is counted and logged once at the end."""
    stats.update(records=0, skipped=0, reasons=[])
    for name in files:
        path = require_file(name, f"{what} file")
        for where, obj in iter_records(path, f"{what}-data"):
            stats["records"] += 1
            try:
                item = convert(obj, where)
            except ZhllamaError as e:
                if not skip_bad:
                    raise
                stats["skipped"] += 1
                if len(stats["reasons"]) < 5:
                    stats["reasons"].append(e.message)
                continue
            yield item
    if stats["skipped"]:
        log.warning("skipped %d bad %s records (first: %s)", stats["skipped"], what, stats["reasons"][0])


def messages_type():
    """The Arrow type of an OpenAI-style message list (what ``Dataset.from_dict`` infers for one)."""
    import pyarrow as pa

    return pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))


def write_arrow(rows, path: Path, schema):
    """Stream ``rows`` (dicts) into an Arrow file and memory-map it as a ``datasets.Dataset``.

    ``Dataset.from_dict`` would need every record in a Python list first, memory growing with the
    data set; ``datasets``' own ``ArrowWriter`` writes them in batches of 1,000."""
    from datasets import Dataset, Features
    from datasets.arrow_writer import ArrowWriter

    with ArrowWriter(features=Features.from_arrow_schema(schema), path=str(path), writer_batch_size=1000) as writer:
        for row in rows:
            writer.write(row)
        writer.finalize()
    return Dataset.from_file(str(path))


def hold_out(kept, validation_split: float, seed: int) -> dict:
    """``{"train", "test"}``: a seeded random ``validation_split`` of ``kept`` held out.  A non-zero split
    holds out at least one example and leaves at least one to train on."""
    n_val = round(validation_split * len(kept))
    if validation_split > 0 and len(kept) >= 2:
        n_val = min(max(n_val, 1), len(kept) - 1)
    if not n_val:
        return {"train": kept, "test": kept.select([])}
    return kept.train_test_split(test_size=n_val, seed=seed, shuffle=True)


def column_counts(ds, column: str):
    """``Counter`` of a column's values, read in batches (never the whole column as a Python list)."""
    from collections import Counter

    counts: Counter = Counter()
    for batch in ds.select_columns([column]).iter(batch_size=10_000):
        counts.update(batch[column])
    return counts


# ---------------------------------------------------------------- encoding and truncation

def response_spans(mask: list[bool]) -> list[tuple[int, int]]:
    """``[start, end)`` of each run of response tokens (a reply's body and its EOS)."""
    spans, start = [], None
    for i, m in enumerate(mask + [False]):
        if m and start is None:
            start = i
        elif not m and start is not None:
            spans.append((start, i))
            start = None
    return spans


def truncate_example(ids: list[int], mask: list[bool], max_length: int) -> tuple[list[int], list[bool], str]:
    """Fit an encoded conversation into ``max_length``; returns ``(ids, mask, status)``.

    status: ``kept`` (fits), ``truncated`` or ``no_response`` (nothing trainable would be left;
    the caller drops it).  Each span ends with the template's EOS, which is always kept.
    """
    spans = response_spans(mask)
    if not spans:
        return ids, mask, "no_response"
    if len(ids) <= max_length:
        return ids, mask, "kept"
    for start, end in spans:
        if end <= max_length:
            continue
        if start < max_length - 1:  # the limit falls in this reply: keep its head and its EOS
            cut = max_length - 1
            return ids[:cut] + [ids[end - 1]], mask[:cut] + [True], "truncated"
        break  # the limit falls before this reply starts (or leaves it no body token)
    complete = [end for _, end in spans if end <= max_length]
    if not complete:
        return [], [], "no_response"
    return ids[:complete[-1]], mask[:complete[-1]], "truncated"


def _is_empty(messages: list[dict]) -> bool:
    return all(not m["content"].strip() for m in messages if m["role"] == "assistant")


def _encode_batch(batch: dict, tokenizer, template: str, max_length: int) -> dict:
    """A ``datasets.map`` function: messages -> input_ids, attention_mask, labels, status."""
    from ..templates import encode_messages

    out = {"input_ids": [], "attention_mask": [], "labels": [], "status": []}
    for messages in batch["messages"]:
        if _is_empty(messages):
            ids, mask, status = [], [], "empty"
        else:
            ids, mask = encode_messages(tokenizer, template, messages, add_generation_prompt=False)
            ids, mask, status = truncate_example(ids, mask, max_length)
        out["input_ids"].append(ids)
        out["attention_mask"].append([1] * len(ids))
        out["labels"].append([i if m else IGNORE_INDEX for i, m in zip(ids, mask)])
        out["status"].append(status)
    return out


def _build_sft(files, tokenizer, template, max_length, validation_split, skip_bad, seed, num_proc, work: Path):
    import pyarrow as pa
    from datasets import DatasetDict

    stats: dict = {}
    raw = write_arrow(({"messages": m} for m in iter_converted(files, "instruction", record_to_messages, skip_bad, stats)),
                      work / "records.arrow", pa.schema([("messages", messages_type())]))
    read = read_report(files, stats, "conversations", len(raw), "conversations", FORMATS_HINT)
    encoded = raw.map(_encode_batch, batched=True, batch_size=500, num_proc=num_proc if num_proc > 1 else None,
                      remove_columns=["messages"], desc="encoding conversations",
                      fn_kwargs={"tokenizer": tokenizer, "template": template, "max_length": max_length})
    status = column_counts(encoded, "status")
    kept = encoded.filter(lambda s: s in ("kept", "truncated"), input_columns="status").remove_columns("status")
    if len(kept) == 0:
        raise ZhllamaError(f"no example left after encoding ({dict(status)})",
                           "raise --max-length, or check that the records have non-empty replies")
    split = hold_out(kept, validation_split, seed)
    response, total = token_counts(kept)
    report = {**read, "template": template, "max_length": max_length, "examples": len(raw),
              "kept": len(kept), "truncated": status["truncated"], "dropped_no_response": status["no_response"],
              "dropped_empty": status["empty"], "response_tokens": response, "total_tokens": total,
              "train_examples": len(split["train"]), "validation_examples": len(split["test"])}
    return DatasetDict({"train": split["train"], "validation": split["test"]}), report


def token_counts(kept) -> tuple[int, int]:
    """(response tokens, all tokens) of the encoded examples, counted by Arrow in batches."""
    import pyarrow.compute as pc

    response = total = 0
    for batch in kept.with_format("arrow").iter(batch_size=10_000):
        labels = pc.list_flatten(batch["labels"])
        total += len(pc.list_flatten(batch["input_ids"]))
        response += pc.sum(pc.not_equal(labels, IGNORE_INDEX)).as_py() or 0
    return response, total


def check_build_arguments(what: str, files: list, tokenizer, template: str, max_length: int, min_length: int,
                          validation_split: float, split_example: str) -> list[str]:
    """The checks an SFT or preference dataset build makes before any work; the files as strings."""
    check_template_fits(tokenizer, template)  # an unknown name or a misfit fails here, before any work
    if max_length < min_length:
        raise ZhllamaError(f"max_length must be at least {min_length}, got {max_length}", "use e.g. 512")
    if not 0 <= validation_split < 1:
        raise ZhllamaError(f"validation_split must be in [0, 1), got {validation_split}", f"use e.g. {split_example}")
    files = [str(f) for f in files]
    if not files:
        raise ZhllamaError(f"no {what} files given", "pass one or more .json/.jsonl files")
    return files


def build_sft_dataset(files: list[str], tokenizer, template: str, max_length: int, validation_split: float = 0.0,
                      skip_bad: bool = False, seed: int = 0, num_proc: int = 1, cache_dir: str | None = None):
    """Masked instruction-tuning examples -> ``(DatasetDict, report)``.

    ``train`` and ``validation`` (empty when ``validation_split`` is 0) have columns
    ``input_ids``, ``attention_mask``, ``labels`` (unpadded, at most ``max_length`` long); labels are
    -100 on every system/user/template token and equal to the ids on each assistant reply and the
    EOS that ends it (every reply of a multi-turn conversation).  See the module docstring for the
    truncation policy.  Cached like :func:`zhllama.data.corpora.build_pt_dataset`.

    Report: records, skipped, examples, kept, truncated, dropped_no_response, dropped_empty
    (every reply blank), response_tokens, total_tokens, train_examples, validation_examples.
    """
    from .corpora import cached_build, fingerprint

    files = check_build_arguments("instruction", files, tokenizer, template, max_length, 2, validation_split, "0.01")
    # the template's Jinja stands for its definition: a cache built by an older rendering is not reused
    key = fingerprint("sft", files, tokenizer, template=chat_template_jinja(tokenizer, template), max_length=max_length,
                      validation_split=validation_split, skip_bad=skip_bad, seed=seed)
    return cached_build("sft", key, cache_dir, lambda work: _build_sft(
        files, tokenizer, template, max_length, validation_split, skip_bad, seed, num_proc, work))


# ---------------------------------------------------------------- batching

class SftCollator:
    """Right-pads a batch of unpadded examples into tensors.

    Pad id is ``tokenizer.pad_token_id`` (or the EOS id when there is none); padding has
    ``attention_mask`` 0 and ``labels`` -100, so it costs no loss.  ``pad_to_multiple_of`` rounds
    the batch length up (tensor-core friendly on GPUs).  With ``labelled_logits_only`` the batch also
    says which positions need logits (:func:`labelled_positions`).
    """

    def __init__(self, tokenizer, pad_to_multiple_of: int | None = None, labelled_logits_only: bool = False):
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        if pad is None:
            raise ZhllamaError("the tokenizer has neither a pad nor an EOS token", "set pad_token in tokenizer_config.json")
        self.pad_id = pad
        self.multiple = pad_to_multiple_of
        self.labelled_logits_only = labelled_logits_only

    def __call__(self, features: list[dict]) -> dict:
        import torch

        longest = max(len(f["input_ids"]) for f in features)
        if self.multiple:
            longest = -(-longest // self.multiple) * self.multiple
        batch = {"input_ids": [], "attention_mask": [], "labels": []}
        for f in features:
            n = len(f["input_ids"])
            pad = longest - n
            batch["input_ids"].append(list(f["input_ids"]) + [self.pad_id] * pad)
            batch["attention_mask"].append([1] * n + [0] * pad)
            batch["labels"].append(list(f["labels"]) + [IGNORE_INDEX] * pad)
        out = {k: torch.tensor(v, dtype=torch.long) for k, v in batch.items()}
        if self.labelled_logits_only:
            out.update(labelled_positions(out["labels"]))
        return out


def labelled_positions(labels) -> dict:
    """``logits_to_keep`` and ``shift_labels`` for a causal LM: project onto the vocabulary only the positions
    whose next token has a label.

    SFT masks the prompt, so most positions carry no loss, yet the model computes their logits (batch x
    length x vocabulary) and backpropagates through them. transformers' ``logits_to_keep`` takes the
    positions to keep (here those that predict a labelled token in any row) and its causal-LM loss takes
    the already shifted labels of exactly those positions: the loss is the same, the projection smaller
    (an SFT step of the demo's 5,717-token model on short answers: 1.8x faster on CPU).
    """
    import torch

    shifted = torch.nn.functional.pad(labels[:, 1:], (0, 1), value=IGNORE_INDEX)
    keep = torch.nonzero((shifted != IGNORE_INDEX).any(dim=0)).flatten()
    return {"logits_to_keep": keep, "shift_labels": shifted[:, keep].contiguous()}

"""Measurements the pipeline reports: held-out task accuracy and validation bits per character.

Task accuracy scores each allowed answer by the log-probability the model gives its tokens after
the prompt (rendered with the chat template, as in training) and takes the best one, like the
C-Eval/CMMLU evaluators take the best option letter.  Scoring the fixed label set rather than free
generation lets the same number be compared before instruction tuning (when the model does not
yet answer in the expected form) and after it.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

from ..templates import alpaca_record_to_messages, encode_messages


def choice_logprob(model, prompt: list[int], answers: list[list[int]]) -> list[float]:
    """Sum of log-probabilities of each answer's tokens following ``prompt`` (one batch)."""
    import torch

    seqs = [prompt + a for a in answers]
    width = max(len(s) for s in seqs)
    pad = 0
    ids = torch.tensor([s + [pad] * (width - len(s)) for s in seqs])
    mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs])
    with torch.no_grad():
        logits = model(input_ids=ids.to(model.device), attention_mask=mask.to(model.device)).logits.float()
    logp = torch.log_softmax(logits, dim=-1)
    out = []
    for row, a in enumerate(answers):
        start = len(prompt)
        positions = torch.arange(start - 1, start - 1 + len(a))
        out.append(float(logp[row, positions, torch.tensor(a)].sum()))
    return out


def task_accuracy(model, tokenizer, template: str, records: list[dict], progress: bool = True) -> dict:
    """``{task: accuracy}`` over held-out records with ``choices``, plus ``"all"``."""
    from tqdm.auto import tqdm

    right: dict[str, int] = defaultdict(int)
    total: dict[str, int] = defaultdict(int)
    for r in tqdm(records, desc="task accuracy", unit="q", disable=not progress):
        msgs = alpaca_record_to_messages(r["instruction"], r.get("input", ""))
        prompt, _ = encode_messages(tokenizer, template, msgs, add_generation_prompt=True)
        answers = [encode_messages(tokenizer, template, msgs + [{"role": "assistant", "content": c}])[0][len(prompt):]
                   for c in r["choices"]]
        scores = choice_logprob(model, prompt, answers)
        best = r["choices"][max(range(len(scores)), key=scores.__getitem__)]
        right[r["task"]] += best == r["output"]
        total[r["task"]] += 1
    out = {t: right[t] / total[t] for t in sorted(total)}
    out["all"] = sum(right.values()) / max(sum(total.values()), 1)
    return out


def bits_per_char(model, tokenizer, texts: list[str], context: int) -> float:
    """Validation bits per character (comparable across tokenizers), via ``zhllama eval ppl``."""
    from ..eval.ppl import perplexity

    report = perplexity(model, tokenizer, texts, context=context, stride=max(1, context // 2), progress=False)
    return report["bits_per_char"]


def read_texts(paths: list[str], max_chars: int) -> list[str]:
    """Documents from the validation files, up to ``max_chars`` characters in all."""
    from ..data.text import iter_documents

    texts, total = [], 0
    for p in paths:
        for doc in iter_documents(Path(p)):
            if total >= max_chars:
                return texts
            texts.append(doc)
            total += len(doc)
    return texts


def chinese_chars_per_token(tokenizer_dirs: dict[str, str], text_files: list[str]) -> dict[str, float]:
    """Chinese characters per token of each tokenizer on the validation text (``zhllama tokenizer stats``)."""
    from ..tokenizer.stats import collect_stats

    labels = list(tokenizer_dirs)
    rows = collect_stats([tokenizer_dirs[k] for k in labels], text_files[:1], progress=False)
    return {label: round(row.chinese_chars_per_token, 4) for label, row in zip(labels, rows)}

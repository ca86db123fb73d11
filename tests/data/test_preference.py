"""Preference data: formats, prompts/replies equal to what `train sft` sees per template, bad records."""

from __future__ import annotations

import json

import pytest

from zhllama.data.instructions import IGNORE_INDEX, build_sft_dataset
from zhllama.data.preference import (build_preference_dataset, check_pairs, encode_pair, fit_pair, load_pairs, pairs_from_tasks,
                                     record_to_pair)
from zhllama.errors import ZhllamaError
from zhllama.templates import TEMPLATES

SYSTEM = "你是一个助手。"
MULTI = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "你好，介绍一下北京。"},
         {"role": "assistant", "content": "北京是中国的首都。"}, {"role": "user", "content": "What about Shanghai?"}]
CHOSEN, REJECTED = "Shanghai is the largest city.", "I don't know."


def write(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def test_every_format_gives_the_same_pair():
    sharegpt = {"conversations": [{"from": "system", "value": SYSTEM}, {"from": "human", "value": "你好，介绍一下北京。"},
                                  {"from": "gpt", "value": "北京是中国的首都。"}, {"from": "human", "value": "What about Shanghai?"}],
                "chosen": {"from": "gpt", "value": CHOSEN}, "rejected": {"from": "gpt", "value": REJECTED}}
    openai = {"messages": MULTI, "chosen": {"role": "assistant", "content": CHOSEN}, "rejected": REJECTED}
    a, b = record_to_pair(sharegpt, "x"), record_to_pair(openai, "y")
    assert a == b and a.prompt == MULTI and (a.chosen, a.rejected) == (CHOSEN, REJECTED)
    alpaca = record_to_pair({"instruction": "翻译", "input": "你好", "chosen": "Hello", "rejected": "Bye"}, "z")
    assert alpaca.prompt == [{"role": "user", "content": "翻译\n你好"}]
    prompt = record_to_pair({"prompt": "翻译\n你好", "system": SYSTEM, "chosen": "Hello", "rejected": "Bye"}, "z")
    assert prompt.prompt == [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "翻译\n你好"}]


@pytest.mark.parametrize("template", sorted(n for n, t in TEMPLATES.items() if not t.special_tokens))  # fit the tiny vocabulary
def test_prompt_and_replies_are_exactly_the_sft_tokens(template, tiny_tokenizer, tmp_path):
    """prompt + chosen is the SFT example token by token; chosen is its last reply's trainable tokens."""
    pair = record_to_pair({"messages": MULTI, "chosen": CHOSEN, "rejected": REJECTED}, "x")
    enc = encode_pair(tiny_tokenizer, template, pair, max_length=1000)
    for reply, ids in ((CHOSEN, enc["chosen_ids"]), (REJECTED, enc["rejected_ids"])):
        sft_file = write(tmp_path / f"{template}-{len(reply)}.jsonl", [{"messages": pair.conversation(reply)}])
        sft, _ = build_sft_dataset([sft_file], tiny_tokenizer, template, 1000, cache_dir=str(tmp_path / "c"))
        row = sft["train"][0]
        assert enc["prompt_ids"] + ids == row["input_ids"]
        last_reply = row["labels"][len(enc["prompt_ids"]):]
        assert last_reply == ids and IGNORE_INDEX not in last_reply
        assert ids[-1] == tiny_tokenizer.eos_token_id
    assert enc["chosen_ids"] != enc["rejected_ids"]


def test_fit_pair_cuts_replies_and_keeps_their_eos():
    assert fit_pair([1, 2], [3, 4, 5, 9], [6, 9], 5) == ([1, 2], [3, 4, 9], [6, 9])
    assert fit_pair([1, 2, 3, 4], [5, 9], [6, 9], 5) is None  # no room for a reply token before the EOS


def test_dataset_columns_split_and_report(tiny_tokenizer, tmp_path):
    rows = [{"prompt": f"问题{i}", "chosen": f"好的答案{i}", "rejected": f"差{i}"} for i in range(10)]
    data, report = build_preference_dataset([write(tmp_path / "p.jsonl", rows)], tiny_tokenizer, "alpaca", 256,
                                             validation_split=0.2, cache_dir=str(tmp_path / "c"))
    assert set(data["train"].column_names) == {"prompt_ids", "chosen_ids", "rejected_ids"}
    assert (report["train_pairs"], report["validation_pairs"], report["pairs"]) == (8, 2, 10)


BAD = [
    ({"prompt": "问", "rejected": "差"}, "missing field 'chosen'"),
    ({"prompt": "问", "chosen": "好"}, "missing field 'rejected'"),
    ({"chosen": "好", "rejected": "差"}, "missing field 'prompt'"),
    ({"prompt": "问", "chosen": "一样", "rejected": "一样"}, "are the same text"),
    ({"prompt": "问", "chosen": "  ", "rejected": "差"}, "empty 'chosen' reply"),
    ({"prompt": "问", "chosen": "好", "rejected": ""}, "empty 'rejected' reply"),
    ({"prompt": " ", "chosen": "好", "rejected": "差"}, "empty prompt"),
    ({"prompt": "问", "chosen": 3, "rejected": "差"}, "'chosen' is not text"),
    ({"messages": MULTI[:3], "chosen": "好", "rejected": "差"}, "prompt ends with an assistant message"),
]


@pytest.mark.parametrize("record,message", BAD, ids=[m for _, m in BAD])
def test_bad_record_names_file_and_line_and_is_skipped_only_on_request(record, message, tmp_path):
    good = {"prompt": "问", "chosen": "好", "rejected": "差"}
    path = write(tmp_path / "p.jsonl", [good, record, good])
    with pytest.raises(ZhllamaError, match=rf"p\.jsonl: line 2: .*{message}"):
        load_pairs([str(path)])
    with pytest.raises(ZhllamaError, match=rf"p\.jsonl: line 2: .*{message}"):
        check_pairs([str(path)])  # the streaming check train rm/dpo/orpo run before loading the model
    pairs, report = load_pairs([str(path)], skip_bad=True)
    assert len(pairs) == 2 and report["skipped"] == 1 and message in report["first_skipped"][0]
    assert check_pairs([str(path)], skip_bad=True) == report


def test_invalid_json_line_and_no_usable_pairs(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"prompt": "问", "chosen": "好", "rejected": "差"}\n{not json\n', encoding="utf-8")
    with pytest.raises(ZhllamaError, match="line 2: invalid JSON"):
        load_pairs([str(path)])
    with pytest.raises(ZhllamaError, match="no usable preference pairs"):
        load_pairs([str(write(tmp_path / "bad.jsonl", [{"prompt": "问"}]))], skip_bad=True)


def test_pairs_from_tasks_prefer_the_correct_label():
    from zhllama.data.tasks import build_tasks

    train = build_tasks(["sentiment", "genre"], train_per_task=20, dev_per_task=2)["train"]
    pairs = pairs_from_tasks(train)
    assert len(pairs) == len(train)
    for p, r in zip(pairs, train):
        assert p["chosen"] == r["output"] and p["rejected"] in r["choices"] and p["rejected"] != r["output"]
        assert record_to_pair(p, "x").prompt[-1]["content"] == f"{r['instruction']}\n{r['input']}"
    with pytest.raises(ZhllamaError, match="needs 'output' and 'choices'"):
        pairs_from_tasks([{"instruction": "x", "output": "a", "choices": ["a"]}])


def test_ppo_prompts_are_streamed_into_a_memory_mapped_dataset(tmp_path, tiny_tokenizer):
    from zhllama.data.preference import build_prompt_dataset

    rows = [{"messages": MULTI, "chosen": CHOSEN, "rejected": REJECTED},
            {"prompt": "翻译", "chosen": "Hello", "rejected": "Bye"}, {"prompt": "问", "chosen": "同", "rejected": "同"}]
    path = tmp_path / "p.json"  # a .json array: read one record at a time too
    path.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    pairs, report = load_pairs([str(path)], skip_bad=True)
    data, rep = build_prompt_dataset([str(path)], tiny_tokenizer, skip_bad=True, cache_dir=str(tmp_path / "c"))
    assert data["train"]["prompt"] == [p.prompt for p in pairs] and len(data["validation"]) == 0
    assert {k: rep[k] for k in report} == report and rep["skipped"] == 1 and not rep["cached"]
    assert data["train"].cache_files  # read from an Arrow file, not held in memory
    assert build_prompt_dataset([str(path)], tiny_tokenizer, skip_bad=True, cache_dir=str(tmp_path / "c"))[1]["cached"]
    with pytest.raises(ZhllamaError, match=r"p.json: record 2: 'chosen' and 'rejected' are the same text"):
        build_prompt_dataset([str(path)], tiny_tokenizer, cache_dir=str(tmp_path / "c2"))

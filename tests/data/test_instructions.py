"""Instruction data: formats, token-by-token masking per template, truncation, bad input."""

from __future__ import annotations

import gzip
import json

import pytest

from zhllama.data.instructions import (IGNORE_INDEX, SftCollator, build_sft_dataset, load_conversations,
                                       truncate_example)
from zhllama.errors import ZhllamaError
from zhllama.templates import encode_messages

SYSTEM = "你是一个助手。"
CONV = [
    {"role": "system", "content": SYSTEM},
    {"role": "user", "content": "你好，介绍一下北京。"},
    {"role": "assistant", "content": "北京是中国的首都。"},
    {"role": "user", "content": "What about Shanghai?"},
    {"role": "assistant", "content": "Shanghai is the largest city."},
]
U1, A1, U2, A2 = (m["content"] for m in CONV[1:])
ALPACA_HEAD = "Below is an instruction that describes a task. Write a response that appropriately completes the request."

# Each template's expected rendering, written out by hand: (kind, text, trained).
EXPECTED = {
    "alpaca": [("bos", "", False), ("text", f"{SYSTEM}\n\n### Instruction:\n{U1}\n\n### Response:", False),
               ("text", A1, True), ("eos", "", True),
               ("bos", "", False), ("text", f"### Instruction:\n{U2}\n\n### Response:", False),
               ("text", A2, True), ("eos", "", True)],
    "llama2": [("bos", "", False), ("text", f"[INST] <<SYS>>\n{SYSTEM}\n<</SYS>>\n\n{U1} [/INST]", False),
               ("text", A1, True), ("eos", "", True),
               ("bos", "", False), ("text", f"[INST] {U2} [/INST]", False), ("text", A2, True), ("eos", "", True)],
    "chatml": [("bos", "", False), ("text", f"<|im_start|>system\n{SYSTEM}<|im_end|>\n", False),
               ("text", f"<|im_start|>user\n{U1}<|im_end|>\n<|im_start|>assistant\n", False),
               ("text", f"{A1}<|im_end|>", True), ("eos", "", True),
               ("text", f"<|im_start|>user\n{U2}<|im_end|>\n<|im_start|>assistant\n", False),
               ("text", f"{A2}<|im_end|>", True), ("eos", "", True)],
    "none": [("bos", "", False), ("text", SYSTEM, False), ("text", U1, False), ("text", A1, True), ("eos", "", True),
             ("text", U2, False), ("text", A2, True), ("eos", "", True)],
}
EXPECTED["llama2-zh"] = EXPECTED["llama2"]


def expected_ids(tok, parts):
    ids, labels = [], []
    for kind, text, trained in parts:
        piece = ([tok.bos_token_id] if kind == "bos" else [tok.eos_token_id] if kind == "eos"
                 else tok(text, add_special_tokens=False)["input_ids"])
        ids += piece
        labels += piece if trained else [IGNORE_INDEX] * len(piece)
    return ids, labels


def write_jsonl(path, records):
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n", encoding="utf-8")
    return str(path)


def build(tmp_path, tok, records, template="alpaca", max_length=512, **kw):
    f = write_jsonl(tmp_path / "data.jsonl", records)
    return build_sft_dataset([f], tok, template, max_length, cache_dir=str(tmp_path / "cache"), **kw)


@pytest.mark.parametrize("template", ["alpaca", "llama2-zh", "llama2", "chatml", "none"])
def test_masking_token_by_token(tmp_path, tiny_tokenizer, template):
    dsd, report = build(tmp_path, tiny_tokenizer, [{"messages": CONV}], template)
    row = dsd["train"][0]
    ids, labels = expected_ids(tiny_tokenizer, EXPECTED[template])
    assert row["input_ids"] == ids
    assert row["labels"] == labels
    assert row["attention_mask"] == [1] * len(ids)
    # both assistant turns are trained, each ending with its EOS
    trained = [i for i in row["labels"] if i != IGNORE_INDEX]
    assert trained.count(tiny_tokenizer.eos_token_id) == 2 and trained[-1] == tiny_tokenizer.eos_token_id
    assert report["response_tokens"] == len(trained) and report["total_tokens"] == len(ids)


@pytest.mark.parametrize("template", ["alpaca", "llama2-zh", "chatml", "none"])
def test_training_prompt_equals_inference_prompt(tmp_path, tiny_tokenizer, template):
    dsd, _ = build(tmp_path, tiny_tokenizer, [{"messages": CONV}], template)
    row = dsd["train"][0]
    prompt, _ = encode_messages(tiny_tokenizer, template, CONV[:4], add_generation_prompt=True)
    assert row["input_ids"][: len(prompt)] == prompt
    assert row["labels"][len(prompt)] != IGNORE_INDEX  # the next token is the second reply's first


def test_llama2_zh_uses_the_bilingual_system_prompt(tmp_path, tiny_tokenizer):
    dsd, _ = build(tmp_path, tiny_tokenizer, [{"instruction": "你好", "output": "你好！"}], "llama2-zh")
    text = tiny_tokenizer.decode(dsd["train"][0]["input_ids"])
    assert "<<SYS>>\nYou are a helpful assistant. 你是一个乐于助人的助手。\n<</SYS>>\n\n你好 [/INST]" in text


def test_alpaca_sharegpt_and_openai_records_read_alike(tmp_path):
    recs = [{"instruction": "翻译", "input": "hello", "output": "你好"},
            {"conversations": [{"from": "system", "value": "S"}, {"from": "human", "value": "翻译\nhello"},
                               {"from": "gpt", "value": "你好"}]},
            {"messages": [{"role": "user", "content": "翻译\nhello"}, {"role": "assistant", "content": "你好"}]}]
    json_file = tmp_path / "a.json"
    json_file.write_text(json.dumps(recs[:1], ensure_ascii=False), encoding="utf-8")
    gz = tmp_path / "b.jsonl.gz"
    with gzip.open(gz, "wt", encoding="utf-8") as f:
        f.write("\n".join(json.dumps(r, ensure_ascii=False) for r in recs[1:]))
    convs, report = load_conversations([str(json_file), str(gz)])
    user_reply = [{"role": "user", "content": "翻译\nhello"}, {"role": "assistant", "content": "你好"}]
    assert convs == [user_reply, [{"role": "system", "content": "S"}] + user_reply, user_reply]
    assert report["records"] == 3 and report["skipped"] == 0


def test_malformed_line_named_then_skipped_with_count(tmp_path, tiny_tokenizer):
    f = tmp_path / "d.jsonl"
    f.write_text('{"instruction": "a", "output": "b"}\n{"instruction": "x", "output": \n'
                 '{"instruction": "c", "output": "d"}\n', encoding="utf-8")
    with pytest.raises(ZhllamaError, match=rf"{f}: line 2: invalid JSON"):
        load_conversations([str(f)])
    convs, report = load_conversations([str(f)], skip_bad=True)
    assert len(convs) == 2 and report["skipped"] == 1 and "line 2" in report["first_skipped"][0]
    dsd, rep = build_sft_dataset([str(f)], tiny_tokenizer, "alpaca", 128, skip_bad=True, cache_dir=str(tmp_path / "c"))
    assert rep["skipped"] == 1 and rep["kept"] == 2 and len(dsd["train"]) == 2


@pytest.mark.parametrize("record, message", [
    ({"instruction": "a"}, r"line 1: missing field 'output'"),
    ({"input": "x", "output": "y"}, r"line 1: missing field 'instruction'"),
    ({"instruction": "a", "output": 3}, r"field 'output' is not text"),
    ({"text": "raw"}, r"not an instruction record"),
    ({"conversations": [{"from": "human", "value": "a"}, {"from": "robot", "value": "b"}]}, r"unknown speaker 'robot'"),
    ({"conversations": [{"from": "gpt", "value": "a"}]}, r"expected a user message"),
    ({"messages": [{"role": "user", "content": "a"}]}, r"ends with a user message"),
])
def test_bad_records_are_named(tmp_path, record, message):
    f = write_jsonl(tmp_path / "bad.jsonl", [record])
    with pytest.raises(ZhllamaError, match=message) as e:
        load_conversations([f])
    assert str(tmp_path / "bad.jsonl") in e.value.message


def test_json_array_errors_name_the_record(tmp_path):
    f = tmp_path / "a.json"
    f.write_text(json.dumps([{"instruction": "a", "output": "b"}, {"instruction": "c"}]), encoding="utf-8")
    with pytest.raises(ZhllamaError, match=r"a.json: record 1: missing field 'output'"):
        load_conversations([str(f)])


def test_empty_inputs_and_unknown_template(tmp_path, tiny_tokenizer):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n", encoding="utf-8")
    with pytest.raises(ZhllamaError, match="no usable conversations"):
        load_conversations([str(empty)])
    with pytest.raises(ZhllamaError, match="no instruction files"):
        load_conversations([])
    with pytest.raises(ZhllamaError, match="instruction file not found"):
        load_conversations([str(tmp_path / "missing.jsonl")])
    f = write_jsonl(tmp_path / "d.jsonl", [{"instruction": "a", "output": "b"}])
    with pytest.raises(ZhllamaError, match="unknown template 'vicuna'"):
        build_sft_dataset([f], tiny_tokenizer, "vicuna", 128, cache_dir=str(tmp_path / "c"))
    (tmp_path / "d.txt").write_text("x", encoding="utf-8")
    with pytest.raises(ZhllamaError, match="unsupported instruction-data format"):
        load_conversations([str(tmp_path / "d.txt")])


def test_blank_replies_dropped_and_counted(tmp_path, tiny_tokenizer):
    dsd, rep = build(tmp_path, tiny_tokenizer, [{"instruction": "a", "output": " "}, {"instruction": "b", "output": "c"}])
    assert rep["dropped_empty"] == 1 and rep["kept"] == 1 and len(dsd["train"]) == 1
    with pytest.raises(ZhllamaError, match="no example left"):
        build(tmp_path, tiny_tokenizer, [{"instruction": "a", "output": ""}])


# ---------------------------------------------------------------- truncation

def test_truncate_unit_cases():
    # prompt 3, reply 3 + EOS(9), prompt 2, reply 2 + EOS(9)
    ids = [1, 2, 3, 10, 11, 12, 9, 4, 5, 20, 21, 9]
    mask = [False] * 3 + [True] * 4 + [False] * 2 + [True] * 3
    assert truncate_example(ids, mask, 12) == (ids, mask, "kept")
    # the limit falls in the second reply: its head and EOS are kept
    assert truncate_example(ids, mask, 11) == ([1, 2, 3, 10, 11, 12, 9, 4, 5, 20, 9], mask[:10] + [True], "truncated")
    # the limit falls in the second prompt: the second turn is dropped, the first keeps its EOS
    assert truncate_example(ids, mask, 9) == (ids[:7], mask[:7], "truncated")
    # ... or leaves the second reply no body token (only room for its EOS)
    assert truncate_example(ids, mask, 10) == (ids[:7], mask[:7], "truncated")
    # the limit falls in the first reply
    assert truncate_example(ids, mask, 5) == ([1, 2, 3, 10, 9], [False] * 3 + [True] * 2, "truncated")
    # no room for any reply token
    assert truncate_example(ids, mask, 4)[2] == "no_response"
    assert truncate_example(ids, mask, 3)[2] == "no_response"


@pytest.mark.parametrize("template", ["alpaca", "llama2-zh", "llama2", "chatml", "none"])
def test_truncation_keeps_eos_and_never_all_masked(tmp_path, tiny_tokenizer, template):
    long_reply = "北京是中国的首都，也是政治文化中心。" * 30
    long_prompt = "请详细介绍一下这个城市的历史。" * 30
    recs = [{"messages": CONV},
            {"instruction": "介绍北京", "output": long_reply, "system": SYSTEM},
            {"instruction": long_prompt, "output": "好的。", "system": SYSTEM},
            {"messages": CONV[:3] + [{"role": "user", "content": long_prompt}, {"role": "assistant", "content": "好"}]}]
    dsd, rep = build(tmp_path, tiny_tokenizer, recs, template, max_length=120)
    eos = tiny_tokenizer.eos_token_id
    assert rep["examples"] == 4 and rep["dropped_no_response"] == 1 and rep["kept"] == 3
    assert rep["truncated"] >= 2
    for row in dsd["train"]:
        assert len(row["input_ids"]) <= 120
        labels = row["labels"]
        assert any(x not in (IGNORE_INDEX, eos) for x in labels)  # a real response token is left
        assert row["input_ids"][-1] == eos and labels[-1] == eos
        # every trained span ends with EOS
        for i, x in enumerate(labels):
            if x != IGNORE_INDEX and (i + 1 == len(labels) or labels[i + 1] == IGNORE_INDEX):
                assert x == eos


def test_validation_split_and_cache(tmp_path, tiny_tokenizer, monkeypatch):
    recs = [{"instruction": f"第{i}题", "output": f"答案{i}"} for i in range(20)]
    dsd, rep = build(tmp_path, tiny_tokenizer, recs, validation_split=0.1)
    assert len(dsd["train"]) == 18 and len(dsd["validation"]) == 2 and not rep["cached"]
    train_set = {tuple(r) for r in dsd["train"]["input_ids"]}
    assert not train_set & {tuple(r) for r in dsd["validation"]["input_ids"]}

    import zhllama.data.instructions as I

    monkeypatch.setattr(I, "_encode_batch", lambda *a, **k: pytest.fail("re-encoded a cached dataset"))
    again, rep2 = build(tmp_path, tiny_tokenizer, recs, validation_split=0.1)
    assert rep2["cached"] and again["train"]["input_ids"] == dsd["train"]["input_ids"]


# ---------------------------------------------------------------- collator

def test_collator_pads_right_and_masks_padding(tiny_tokenizer):
    feats = [{"input_ids": [1, 5, 6], "attention_mask": [1, 1, 1], "labels": [-100, 5, 6]},
             {"input_ids": [1, 7], "attention_mask": [1, 1], "labels": [-100, 7]}]
    batch = SftCollator(tiny_tokenizer, pad_to_multiple_of=4)(feats)
    pad = tiny_tokenizer.pad_token_id if tiny_tokenizer.pad_token_id is not None else tiny_tokenizer.eos_token_id
    assert batch["input_ids"].tolist() == [[1, 5, 6, pad], [1, 7, pad, pad]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 0], [1, 1, 0, 0]]
    assert batch["labels"].tolist() == [[-100, 5, 6, -100], [-100, 7, -100, -100]]
    assert batch["input_ids"].dtype.is_floating_point is False


def test_labelled_logits_only_keeps_the_loss_and_gradients(tiny_tokenizer, tiny_model_dir):
    """The collator's logits_to_keep/shift_labels give the model exactly the full-logits loss and gradients,
    with logits only at the positions that predict a labelled token."""
    import torch
    from transformers import AutoModelForCausalLM

    from zhllama.train.data import labelled_logits_supported

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    assert labelled_logits_supported(model)
    feats = [{"input_ids": [1, 5, 6, 9, 10], "attention_mask": [1] * 5, "labels": [-100, -100, -100, 9, 10]},
             {"input_ids": [1, 7, 8], "attention_mask": [1] * 3, "labels": [-100, 7, 8]}]
    plain = SftCollator(tiny_tokenizer)(feats)
    kept = SftCollator(tiny_tokenizer, labelled_logits_only=True)(feats)
    assert kept["logits_to_keep"].tolist() == [0, 1, 2, 3]  # position 4 predicts nothing in either row
    assert kept["shift_labels"].tolist() == [[-100, -100, 9, 10], [7, 8, -100, -100]]

    def loss_and_grad(batch):
        model.zero_grad()
        out = model(**batch)
        out.loss.backward()
        return out, model.lm_head.weight.grad.clone()

    full, g_full = loss_and_grad(plain)
    part, g_part = loss_and_grad(kept)
    assert part.logits.shape[1] == 4 < full.logits.shape[1]
    assert torch.allclose(part.loss, full.loss, atol=1e-6)
    assert torch.allclose(g_part, g_full, atol=1e-6)
    # a wrong position set changes the loss: the test would notice a shifted index
    wrong = dict(kept, shift_labels=torch.roll(kept["shift_labels"], 1, dims=1))
    assert not torch.allclose(model(**wrong).loss, full.loss, atol=1e-3)


def test_labelled_logits_supported_sees_through_peft(tiny_model_dir):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from zhllama.train.data import labelled_logits_supported

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    assert labelled_logits_supported(get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj"])))
    assert not labelled_logits_supported(torch.nn.Linear(2, 2))  # no logits_to_keep


def test_real_alpaca_zh_part(shared_data, tiny_tokenizer, tmp_path):
    """One part of the Chinese Alpaca data (extra en_* fields are ignored)."""
    f = shared_data / "alpaca-zh" / "alpaca_chinese_part_0.json"
    records = json.loads(f.read_text(encoding="utf-8"))
    convs, report = load_conversations([str(f)])
    assert report["records"] == len(records) == len(convs) and report["skipped"] == 0
    first = records[0]
    user = first["instruction"] + (f"\n{first['input']}" if first["input"] else "")
    assert convs[0] == [{"role": "user", "content": user}, {"role": "assistant", "content": first["output"]}]
    dsd, rep = build_sft_dataset([str(f)], tiny_tokenizer, "alpaca", 256, cache_dir=str(tmp_path / "c"))
    assert rep["kept"] + rep["dropped_no_response"] + rep["dropped_empty"] == len(records)
    eos = tiny_tokenizer.eos_token_id
    assert all(r[-1] == eos for r in dsd["train"]["labels"])

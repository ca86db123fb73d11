"""Pre-training data: packing without padding, EOS between documents, held-out documents, cache."""

from __future__ import annotations

import gzip
import json

import pytest

import zhllama.data.shards as S
from zhllama.data.blocks import BlockCollator
from zhllama.data.corpora import build_pt_dataset
from zhllama.errors import ZhllamaError


@pytest.fixture(scope="module")
def docs(builtin_text):
    return list(builtin_text["zh"][:120])


def write_txt(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def doc_ids(tok, text):
    return [tok.bos_token_id] + tok(text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]


def ids(split):
    """Every block of a split as a list of ids."""
    return [split[i]["input_ids"].tolist() for i in range(len(split))]


def split_on_eos(stream, eos):
    """Complete documents (ending with EOS) of a token stream; a trailing partial one is dropped."""
    out, cur = [], []
    for i in stream:
        cur.append(i)
        if i == eos:
            out.append(tuple(cur))
            cur = []
    return out


def test_blocks_are_the_documents_concatenated_with_no_padding(tmp_path, tiny_tokenizer, docs):
    f = write_txt(tmp_path / "c.txt", docs)
    dsd, rep = build_pt_dataset([f], tiny_tokenizer, 64, validation_split=0.0, cache_dir=str(tmp_path / "cache"))
    expected = [i for d in docs for i in doc_ids(tiny_tokenizer, d)]
    n_blocks = len(expected) // 64
    train = dsd["train"]
    assert len(train) == n_blocks and len(dsd["validation"]) == 0
    assert all(len(r) == 64 for r in ids(train))
    batch = BlockCollator()([train[0], train[1]])
    assert batch["attention_mask"].eq(1).all()  # no padding anywhere
    assert batch["labels"].tolist() == batch["input_ids"].tolist() == ids(train)[:2]
    stream = [i for r in ids(train) for i in r]
    assert stream == expected[: n_blocks * 64]  # BOS doc EOS BOS doc EOS ..., cut into blocks
    assert rep["documents"] == len(docs) and rep["tokens"] == len(expected)
    assert rep["dropped_tail_tokens"] == len(expected) - n_blocks * 64 < 64
    assert rep["blocks"] == n_blocks and rep["chars"] == sum(len(d) for d in docs)


def test_validation_holds_whole_documents(tmp_path, tiny_tokenizer, docs):
    f = write_txt(tmp_path / "c.txt", docs)
    dsd, rep = build_pt_dataset([f], tiny_tokenizer, 32, validation_split=0.1, cache_dir=str(tmp_path / "cache"))
    eos = tiny_tokenizer.eos_token_id
    assert rep["validation_blocks"] == len(dsd["validation"]) >= 1
    assert rep["train_blocks"] + rep["validation_blocks"] == rep["blocks"]
    val_stream = [i for r in ids(dsd["validation"]) for i in r]
    train_stream = [i for r in ids(dsd["train"]) for i in r]
    all_docs = {tuple(doc_ids(tiny_tokenizer, d)) for d in docs}
    val_docs, train_docs = set(split_on_eos(val_stream, eos)), set(split_on_eos(train_stream, eos))
    # streams start at a document boundary, so every EOS-terminated run is a whole document
    assert val_docs <= all_docs and train_docs <= all_docs
    assert val_docs and not (val_docs & train_docs)
    assert 0.05 < rep["validation_blocks"] / rep["blocks"] < 0.25


def test_jsonl_gzip_text_field_and_bad_lines(tmp_path, tiny_tokenizer, docs):
    p = tmp_path / "c.jsonl.gz"
    lines = [json.dumps({"content": d}, ensure_ascii=False) for d in docs[:40]]
    lines.insert(3, '{"content": "broken')
    with gzip.open(p, "wt", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    with pytest.raises(ZhllamaError, match=r"c.jsonl.gz: line 4: invalid JSON"):
        build_pt_dataset([str(p)], tiny_tokenizer, 32, text_field="content", cache_dir=str(tmp_path / "cache"))
    dsd, rep = build_pt_dataset([str(p)], tiny_tokenizer, 32, text_field="content", skip_bad=True,
                                cache_dir=str(tmp_path / "cache"))
    assert rep["skipped_lines"] == 1 and rep["documents"] == 40 and len(dsd["train"]) > 0


def test_second_build_does_not_tokenize_and_content_change_rebuilds(tmp_path, tiny_tokenizer, docs, monkeypatch):
    f = tmp_path / "c.txt"
    write_txt(f, docs[:60])
    cache = str(tmp_path / "cache")
    first, rep1 = build_pt_dataset([str(f)], tiny_tokenizer, 32, num_proc=2, cache_dir=cache)
    assert not rep1["cached"]
    with monkeypatch.context() as m:
        m.setattr(S, "run_shards", lambda *a, **k: pytest.fail("tokenized again"))
        second, rep2 = build_pt_dataset([str(f)], tiny_tokenizer, 32, num_proc=2, cache_dir=cache)
    assert rep2["cached"] and rep2["cache"] == rep1["cache"]
    assert ids(second["train"]) == ids(first["train"])
    write_txt(f, docs[60:120])  # same name, new content
    third, rep3 = build_pt_dataset([str(f)], tiny_tokenizer, 32, num_proc=2, cache_dir=cache)
    assert not rep3["cached"] and rep3["cache"] != rep1["cache"]
    assert ids(third["train"]) != ids(first["train"])


def test_multi_process_tokenization_matches_single(tmp_path, tiny_tokenizer, docs):
    f = write_txt(tmp_path / "c.txt", docs)
    one, _ = build_pt_dataset([f], tiny_tokenizer, 48, cache_dir=str(tmp_path / "a"))
    two, _ = build_pt_dataset([f], tiny_tokenizer, 48, num_proc=2, cache_dir=str(tmp_path / "b"))
    assert ids(one["train"]) == ids(two["train"])
    assert ids(one["validation"]) == ids(two["validation"])


def test_corpus_shorter_than_two_blocks_has_no_validation(tmp_path, tiny_tokenizer):
    texts = ["北京是中国的首都。", "上海是中国最大的城市。", "广州是南方的城市。"]
    total = sum(len(doc_ids(tiny_tokenizer, t)) for t in texts)
    block = total * 2 // 3  # one block fits, two do not
    f = write_txt(tmp_path / "c.txt", texts)
    dsd, rep = build_pt_dataset([f], tiny_tokenizer, block, validation_split=0.5, cache_dir=str(tmp_path / "cache"))
    assert len(dsd["train"]) == 1 and len(dsd["validation"]) == 0
    assert rep["validation_blocks"] == 0 and rep["validation_documents"] == 0
    assert rep["dropped_tail_tokens"] == total - block


def test_bad_inputs(tmp_path, tiny_tokenizer):
    empty = write_txt(tmp_path / "empty.txt", ["", "  "])
    with pytest.raises(ZhllamaError, match="no documents"):
        build_pt_dataset([empty], tiny_tokenizer, 16, cache_dir=str(tmp_path / "c"))
    short = write_txt(tmp_path / "short.txt", ["你好"])
    with pytest.raises(ZhllamaError, match="fewer than one block of 512"):
        build_pt_dataset([short], tiny_tokenizer, 512, cache_dir=str(tmp_path / "c"))
    with pytest.raises(ZhllamaError, match="corpus file not found|data file not found"):
        build_pt_dataset([str(tmp_path / "missing.txt")], tiny_tokenizer, 16, cache_dir=str(tmp_path / "c"))
    with pytest.raises(ZhllamaError, match="no pre-training files"):
        build_pt_dataset([], tiny_tokenizer, 16)
    with pytest.raises(ZhllamaError, match="validation_split"):
        build_pt_dataset([short], tiny_tokenizer, 16, validation_split=1.5)
    # the short corpus is prepared (its blocks are what is too long); the empty one left no finished folder
    assert len(list((tmp_path / "c").glob("*/index.json"))) == 1

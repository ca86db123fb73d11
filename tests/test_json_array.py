"""A ``.json`` array of records is read one record at a time (zhllama.text.iter_json_array), not whole."""

from __future__ import annotations

import io
import json
import tracemalloc
from pathlib import Path

import pytest

from zhllama import text
from zhllama.errors import ZhllamaError

RECORDS = [{"instruction": "把这句话翻译成英文", "input": "今天天气很好。", "output": "The weather is nice today."},
           {"conversations": [{"from": "human", "value": "引号\"和\\反斜杠\n换行"}, {"from": "gpt", "value": "\u2028😀"}]},
           12345678901234567890, -1.5e-7, [], {}, "一个字符串", None, True, [1, [2, [3]]]]


def records(src: str, path: Path = Path("x.json")) -> list:
    return list(text.iter_json_array(io.StringIO(src), path))


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 7, 16, 64, 1 << 16])
@pytest.mark.parametrize("indent", [None, 2])
def test_records_match_json_load_whatever_the_chunk_size(monkeypatch, chunk, indent):
    monkeypatch.setattr(text, "JSON_CHUNK", chunk)
    src = json.dumps(RECORDS, ensure_ascii=False, indent=indent)
    assert records(src) == RECORDS
    assert records(" \n[ ]\n") == [] and records('{"text": "一个对象"}') == [{"text": "一个对象"}]


def test_records_come_out_before_the_rest_of_the_file_is_read():
    src = json.dumps([{"instruction": f"问题{i}", "output": "答" * 50} for i in range(20_000)], ensure_ascii=False)
    f = io.StringIO(src)
    first = next(text.iter_json_array(f, Path("big.json")))
    assert first["instruction"] == "问题0" and f.tell() <= text.JSON_CHUNK < len(src) / 10


def test_memory_holds_a_chunk_and_a_record_not_the_file(tmp_path):
    path = tmp_path / "big.json"
    path.write_text(json.dumps([{"instruction": f"问题{i}", "output": "答" * 100} for i in range(30_000)],
                               ensure_ascii=False), encoding="utf-8")  # 10 MB
    tracemalloc.start()
    count = sum(1 for _ in text.iter_records(path))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert count == 30_000 and peak < 2_000_000  # json.load: about 40 MB here


@pytest.mark.parametrize("src, message", [
    ('[{"a": 1},\n {"b": 2},\n {"c": }]', r"x.json: record 2 \(line 3\): invalid JSON \(Expecting value\)"),
    ('[{"a": 1},\n {"b": 2}\n {"c": 3}]', r"x.json: record 1 \(line 3\): invalid JSON \(expected ',' or ']'"),
    ('[{"a": 1},\n {"b": "unterminated}]', r"x.json: record 1 \(line 2\): invalid JSON \(Unterminated string"),
    ('[{"a": 1},\n', r"x.json: record 1 \(line 2\): invalid JSON \(Expecting value\)"),
    ('[{"a": 1}\n', r"x.json: record 0 \(line 2\): invalid JSON \(the array is not closed\)"),
    ('[{"a": 1}]\n]', r"x.json: after the array \(line 2\): invalid JSON \(extra data\)"),
    ("", r"x.json: line 1: invalid JSON \(Expecting value\)"),
])
@pytest.mark.parametrize("chunk", [3, 1 << 16])
def test_a_bad_record_is_named_by_index_and_line(monkeypatch, src, message, chunk):
    monkeypatch.setattr(text, "JSON_CHUNK", chunk)
    with pytest.raises(ZhllamaError, match=message):
        records(src)


def test_the_records_before_a_bad_one_are_read_first(tmp_path):
    from zhllama.data.instructions import load_conversations

    path = tmp_path / "a.json"
    path.write_text('[{"instruction": "a", "output": "b"},\n{"instruction": "c", "output": ]', encoding="utf-8")
    got = []
    with pytest.raises(ZhllamaError, match=r"a.json: record 1 \(line 2\): invalid JSON"):
        for where, obj in text.iter_records(path):
            got.append(where)
    assert got == [f"{path}: record 0"]
    with pytest.raises(ZhllamaError, match=r"a.json: record 1 \(line 2\): invalid JSON.*convert it to JSONL"):
        load_conversations([str(path)], skip_bad=True)  # an array cannot be resynchronised: not skipped

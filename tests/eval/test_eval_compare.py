import json

import pytest

from zhllama.cli import main
from zhllama.errors import ZhllamaError
from zhllama.eval.compare import parse_model_spec, read_questions


def test_model_specs():
    s = parse_model_spec("models/alpaca2")
    assert (s.label, s.path, s.lora, s.template) == ("alpaca2", "models/alpaca2", None, None)
    s = parse_model_spec("path=m,label=chat,lora=ad,template=llama2-zh")
    assert (s.label, s.path, s.lora, s.template) == ("chat", "m", "ad", "llama2-zh")
    with pytest.raises(ZhllamaError, match="cannot read 'colour=red'"):
        parse_model_spec("path=m,colour=red")


def test_questions_files(tmp_path):
    t = tmp_path / "q.txt"
    t.write_text("第一个问题\n\n第二个问题\n", encoding="utf-8")
    assert [(q["id"], q["question"]) for q in read_questions(t)] == [("1", "第一个问题"), ("3", "第二个问题")]
    j = tmp_path / "q.jsonl"
    j.write_text('{"id": "a", "instruction": "写诗", "category": "文学"}\n{"id": "a", "question": "再写"}\n', encoding="utf-8")
    with pytest.raises(ZhllamaError, match="duplicate question id 'a'"):
        read_questions(j)
    j.write_text('{"id": "a", "text": "x"}\n', encoding="utf-8")
    with pytest.raises(ZhllamaError, match="q.jsonl: line 1: no question text"):
        read_questions(j)


def test_compare_end_to_end(tiny_model_dir, tmp_path, capsys):
    from zhllama.infer.engine import Engine, SamplingParams

    q = tmp_path / "q.jsonl"
    q.write_text('{"id": "1", "question": "中国的首都是哪里？", "category": "知识"}\n'
                 '{"id": "2", "question": "a < b & c"}\n', encoding="utf-8")
    j = tmp_path / "j.jsonl"
    j.write_text('{"id": "1", "model_a": "raw", "model_b": "chat", "winner": "b"}\n', encoding="utf-8")
    out = tmp_path / "out"
    assert main(["eval", "compare", "--questions", str(q), "--model", f"path={tiny_model_dir},label=raw",
                 "--model", f"path={tiny_model_dir},label=chat,template=llama2-zh", "--judgements", str(j),
                 "--out", str(out), "--max-new-tokens", "6", "--temperature", "0", "--device", "cpu"]) == 0
    records = [json.loads(x) for x in (out / "answers.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in records] == ["1", "2"] and set(records[0]["answers"]) == {"raw", "chat"}

    # each model answered with its own template: same text as the engine gives directly
    params = SamplingParams(max_new_tokens=6, temperature=0, top_p=0.9, top_k=40, repetition_penalty=1.1, seed=42)
    for label, template in (("raw", "none"), ("chat", "llama2-zh")):
        engine = Engine.load(tiny_model_dir, template=template, device="cpu")
        prompt = engine.chat_prompt([{"role": "user", "content": "中国的首都是哪里？"}], 6)
        assert records[0]["answers"][label] == engine.generate([prompt], params)[0].text
    md = (out / "report.md").read_text(encoding="utf-8")
    assert "| id | category | question | raw | chat |" in md and "| 1 | 知识 | 中国的首都是哪里？ |" in md
    assert "| chat | 100.00% |" in md  # arena table on top
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "a &lt; b &amp; c" in page and "<th>chat</th>" in page


def test_compare_errors(tiny_model_dir, tmp_path, capsys):
    q = tmp_path / "q.txt"
    q.write_text("问题\n", encoding="utf-8")
    for argv, needle in ((["--model", str(tiny_model_dir)], "--model needs --questions"),
                         (["--questions", str(q), "--model", str(tiny_model_dir), "--model", str(tiny_model_dir)],
                          "same label"),
                         ([], "nothing to compare")):
        assert main(["eval", "compare", "--out", str(tmp_path / "o"), *argv]) == 2
        err = capsys.readouterr().err
        assert needle in err and len(err.strip().splitlines()) == 1

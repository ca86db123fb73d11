"""`zhllama eval report`: a base and a model trained on Chinese text, every evaluation, paired standard errors."""

from __future__ import annotations

import json
import math

import pytest

from zhllama.cli import main
from zhllama.errors import ZhllamaError
from zhllama.eval.report import Metric

ZH = ["在农业生产中，土地是最主要的基本生产资料。", "人民日报今天发表评论，谈经济发展。", "北京是中国的首都，也是文化中心。",
      "长江是中国最长的河流，流经许多省份。"]
EN = ["The quick brown fox jumps over the lazy dog.", "Rivers flow into the sea through many valleys.",
      "Every morning she reads the newspaper before work."]


def test_paired_standard_error_by_hand():
    m = Metric("x", "% correct", True, items={"a": [1, 0, 1, 1], "b": [1, 1, 1, 0]}, pooled={"a": 75.0, "b": 75.0})
    delta, se = m.difference("a", "b")
    # differences 0, 1, 0, -1: mean 0, sample variance 2/3, SE = sqrt(2/3 / 4), in percentage points
    assert delta == 0 and se == pytest.approx(100 * math.sqrt(2 / 3 / 4))
    m.paired = False  # passkey: two binomial accuracies, 3/4 each: sqrt(2 * 0.75 * 0.25 / 4)
    assert m.difference("a", "b")[1] == pytest.approx(100 * math.sqrt(2 * 0.75 * 0.25 / 4))


@pytest.fixture(scope="module")
def adapted_dir(tiny_model_dir, tmp_path_factory):
    """The tiny model after a few steps on the Chinese texts: it must gain there."""
    import torch

    from zhllama.model.load import load_model
    from zhllama.tokenizer.hf import copy_tokenizer_files

    model, tok = load_model(tiny_model_dir)
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(15):
        for text in ZH:
            ids = torch.tensor([[tok.bos_token_id] + tok(text, add_special_tokens=False)["input_ids"]])
            model(input_ids=ids, labels=ids).loss.backward()
            opt.step()
            opt.zero_grad()
    out = tmp_path_factory.mktemp("adapted") / "zh-adapted"
    model.save_pretrained(out)
    copy_tokenizer_files(tiny_model_dir, out)
    return out


def write_sets(root):
    (root / "zh.jsonl").write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in ZH), "utf-8")
    (root / "en.txt").write_text(" ".join(EN), "utf-8")
    for split in ("dev", "test"):
        (root / "cmmlu" / split).mkdir(parents=True)
        for subject in ("agronomy", "anatomy"):
            rows = [",Question,A,B,C,D,Answer"] + [f"{i},问题{i}是什么？,甲,乙,丙,丁,{'ABCD'[i % 4]}" for i in range(5)]
            (root / "cmmlu" / split / f"{subject}.csv").write_text("\n".join(rows) + "\n", "utf-8")
    (root / "mmlu" / "test").mkdir(parents=True)
    (root / "mmlu" / "test" / "astronomy_test.csv").write_text(
        "".join(f"What is {i}?,one,two,three,four,{'ABCD'[i % 4]}\n" for i in range(6)), "utf-8")
    (root / "lsht.jsonl").write_text("".join(json.dumps(
        {"input": f"新闻{i}", "context": "体育新闻：比赛。\n财经新闻：股市。", "answers": ["体育"],
         "all_classes": ["体育", "财经"]}, ensure_ascii=False) + "\n" for i in range(3)), "utf-8")


def test_report_on_a_base_and_its_chinese_training(tiny_model_dir, adapted_dir, tmp_path, capsys):
    pytest.importorskip("jieba")
    write_sets(tmp_path)
    out = tmp_path / "report"
    assert main(["eval", "report", "--base", str(tiny_model_dir), "--model", str(adapted_dir), "--out", str(out),
                 "--zh-text", str(tmp_path / "zh.jsonl"), "--en-text", str(tmp_path / "en.txt"),
                 "--mc-task", "cmmlu", "--mc-data", str(tmp_path / "cmmlu"), "--mmlu-data", str(tmp_path / "mmlu"),
                 "--passkey-lengths", "64", "96", "--passkey-trials", "2", "--longbench", str(tmp_path / "lsht.jsonl"),
                 "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    report = json.loads((out / "report.json").read_text("utf-8"))
    rows = {m["name"]: m for m in report["metrics"]}
    assert list(rows) == ["zh text", "en text", "CMMLU", "MMLU", "passkey 64", "passkey 96", "LongBench lsht"]
    assert [len(rows[k]["items"]["model"]) for k in rows] == [4, 1, 10, 6, 2, 2, 3]
    zh = rows["zh text"]
    gain = zh["pooled"]["zh-adapted"] - zh["pooled"]["model"]
    assert gain < -0.5  # trained on these texts: fewer bits per character
    diffs = [b - a for a, b in zip(zh["items"]["model"], zh["items"]["zh-adapted"])]
    mean = sum(diffs) / 4
    se = math.sqrt(sum((d - mean) ** 2 for d in diffs) / 3 / 4)
    assert f"{gain:+.3f} ± {se:.3f} ▲" in printed  # lower bits/char is better
    assert set(report["data_sha256"]) == {"zh_text", "en_text", "mc_data", "mmlu_data", "longbench:lsht.jsonl"}
    assert report["command"][:3] == ["zhllama", "eval", "report"]
    assert (out / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "model" / "cmmlu" / "predictions.jsonl").is_file()  # eval mc's own files, per model


def test_report_refuses_what_it_cannot_do(tmp_path):
    from zhllama.eval.config import ReportConfig
    from zhllama.eval.report import run_report

    def run(**kw):
        run_report(ReportConfig(out=str(tmp_path / "r"), **kw), [])

    with pytest.raises(ZhllamaError, match="nothing to evaluate"):
        run(base="a/base", model=["b/adapted"])
    with pytest.raises(ZhllamaError, match="same name"):
        run(base="a/m", model=["b/m"], en_text="x")
    with pytest.raises(ZhllamaError, match="--mc-task and --mc-data go together"):
        run(base="a/m", model=["b/n"], mc_task="cmmlu")
    with pytest.raises(ZhllamaError, match="no adapted model"):
        run(base="a/m", en_text="x")

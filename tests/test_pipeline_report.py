"""The pipeline's report stage: `zhllama eval report` on the English base against the run's models."""

from __future__ import annotations

import json
import math

import pytest

from zhllama.errors import ZhllamaError
from zhllama.pipeline import parse_recipe, prepare, run_pipeline
from zhllama.pipeline.sources import stdlib_docstrings

ZH = "builtin:people_daily?split=valid&max_chars=600"
EN = "builtin:stdlib_docstrings?max_chars=1500&skip_chars=20000"
PT = {"train_files": ["builtin:people_daily?split=train&max_chars=3000"], "full": True, "block_size": 64, "batch_size": 4,
      "max_steps": 3, "learning_rate": 3e-3, "logging_steps": 1}


def recipe(tmp_path, base, **sections):
    return parse_recipe({"run_dir": str(tmp_path / "run"), "base_model": str(base), "template": "alpaca", **sections},
                        root=tmp_path)


def test_the_report_compares_the_english_base_with_the_pretrained_and_final_models(tmp_path, tiny_model_dir):
    sft = {"train_files": ["builtin:tasks?per_task=4&dev=2&test=2"], "full": True}
    stages = prepare(recipe(tmp_path, tiny_model_dir, pt=PT, sft=sft, report={"zh_text": ZH, "en_text": EN, "text_limit": 5}))
    report, run = stages[-1], tmp_path / "run"
    assert report.name == "report"
    assert report.inputs["base"] == str(tiny_model_dir)
    assert report.inputs["models"] == {"pre-trained": str(run / "pt" / "out" / "model"),
                                       "instruction-tuned": str(run / "sft" / "out" / "model")}
    assert report.inputs["zh_text"].endswith(".txt") and report.inputs["en_text"].endswith(".txt")  # files: inputs
    assert report.settings.zh_text is None and report.settings.text_limit == 5


@pytest.mark.parametrize("section,message", [
    ({"zh_txt": ZH}, r"report: unknown key 'zh_txt'.*did you mean 'zh_text'"),
    ({"zh_text": ZH, "model": ["x"]}, r"report: 'model' is set by the pipeline"),
    ({"text_limit": 5}, r"report: nothing to evaluate"),
])
def test_bad_report_sections_are_refused_before_any_work(section, message, tmp_path, tiny_model_dir):
    with pytest.raises(ZhllamaError, match=message):
        prepare(recipe(tmp_path, tiny_model_dir, pt=PT, report=section))
    assert not (tmp_path / "run" / "pt").exists()


def test_a_report_with_nothing_trained_before_it_is_refused(tmp_path, tiny_model_dir):
    with pytest.raises(ZhllamaError, match=r"report: no stage before it changed the English base model"):
        prepare(recipe(tmp_path, tiny_model_dir, report={"zh_text": ZH}))


def test_held_out_english_leaves_out_what_the_base_was_trained_on():
    trained = set(stdlib_docstrings(max_chars="20000").split("\n")) - {""}
    held_out = stdlib_docstrings(max_chars="2000", skip_chars="20000").split("\n")[:-1]
    assert held_out and not trained & set(held_out)


def test_report_stage_writes_the_report_and_puts_its_differences_in_the_summary(tmp_path, tiny_model_dir):
    result = run_pipeline(recipe(tmp_path, tiny_model_dir, pt=PT,
                                 report={"zh_text": ZH, "en_text": EN, "device": "cpu"}), echo=lambda s: None)
    out = tmp_path / "run" / "report" / "out"
    assert {"report.md", "report.json", "report.png"} <= {p.name for p in out.iterdir()}
    report = json.loads((out / "report.json").read_text("utf-8"))
    assert report["base"] == str(tiny_model_dir) and report["models"] == [str(tmp_path / "run" / "pt" / "out" / "model")]
    rows = {m["name"]: m for m in report["metrics"]}
    assert list(rows) == ["zh text", "en text"]
    metrics = json.loads((tmp_path / "run" / "report" / "manifest.json").read_text())["metrics"]
    assert metrics["base"] == "English base" and list(metrics["differences"]) == ["pre-trained"]
    for name, lang in (("zh text", "zh"), ("en text", "en")):
        base, pt = rows[name]["items"]["English base"], rows[name]["items"]["pre-trained"]
        lines = (out / "texts" / f"{lang}.jsonl").read_text("utf-8").splitlines()
        assert len(base) == len(pt) == len(lines) > 2  # one item per line of the builtin text
        diffs = [b - a for a, b in zip(base, pt)]
        mean = sum(diffs) / len(diffs)
        se = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (len(diffs) - 1) / len(diffs))
        d = metrics["differences"]["pre-trained"][name]
        assert d["n"] == len(lines) and d["se"] == pytest.approx(se, abs=1e-4)
        assert d["difference"] == pytest.approx(rows[name]["pooled"]["pre-trained"] - rows[name]["pooled"]["English base"],
                                                abs=1e-4)
        assert f"{d['difference']:+.4f} ± {d['se']:.4f}" in result.summary
    assert "Against the English base" in result.summary
    assert "| pre-trained - base (± SE) |" in (out / "report.md").read_text("utf-8").splitlines()[4]

"""The stage registry: one entry per stage (section schema, needs, plan, run) drives the recipe
checks, the plan and what runs."""

from __future__ import annotations

import typing
from dataclasses import fields, replace

import pytest

from zhllama.align import TRAINERS
from zhllama.config import to_dict
from zhllama.data.prepare import PrepareConfig
from zhllama.errors import ZhllamaError
from zhllama.eval.config import ReportConfig
from zhllama.export.config import GgufSettings
from zhllama.model.resize import ResizeSettings
from zhllama.pipeline import STAGES, Recipe, parse_recipe
from zhllama.pipeline.runner import run_stages
from zhllama.pipeline import plan
from zhllama.train.config import TrainConfig


def test_stages_are_registered_in_pipeline_order_each_with_its_recipe_section():
    assert list(STAGES) == ["base", "tokenizer", "resize", "prepare", "pt", "ablation", "sft", "merge", "rm", "dpo", "ppo",
                           "orpo", "eval", "report", "export", "serve"]
    hints = typing.get_type_hints(Recipe)
    for name, spec in STAGES.items():
        section_type = [a for a in typing.get_args(hints[name]) if a is not type(None)][0]
        assert section_type is spec.section, name
        own = {f.name for f in fields(section_type)}
        if name in ("pt", "ablation", "sft"):  # the training stage's settings, less what the pipeline sets
            assert own - {"then"} < {f.name for f in fields(TrainConfig)} and "model" not in own, name
        elif name in TRAINERS:  # the preference trainer's schema, less what the pipeline sets
            schema = {f.name for f in fields(TRAINERS[name].schema)}
            assert own < schema and {"train_files", "template"} <= own and "model" not in own, name
        elif name == "prepare":  # `zhllama data prepare`'s options, less the tokenizer and folder the pipeline gives
            assert own == {f.name for f in fields(PrepareConfig)} - {"tokenizer", "out", "overwrite"}, name
        elif name == "report":  # `zhllama eval report`'s schema, less the models and the folder the pipeline gives
            assert own == {f.name for f in fields(ReportConfig)} - {"base", "model", "out"}, name


def test_a_stage_listed_without_a_section_runs_with_its_schema_defaults(tmp_path):
    r = parse_recipe({"base_model": str(tmp_path), "run_dir": str(tmp_path / "run"), "tokenizer": {"path": "tok"},
                      "stages": ["tokenizer", "resize"]}, root=tmp_path)
    resize = plan(r)[1]
    assert resize.name == "resize" and resize.settings == ResizeSettings()
    assert to_dict(resize.settings) == {"init": "subword-mean", "pad_to_multiple_of": None}


def test_what_a_stage_needs_comes_from_its_registry_entry(tmp_path, monkeypatch):
    data = {"run_dir": str(tmp_path / "run"), "export": {}}
    with pytest.raises(ZhllamaError, match=r"stage 'export' has nothing to work on"):
        parse_recipe(data, root=tmp_path)
    monkeypatch.setitem(STAGES, "export", replace(STAGES["export"], needs=()))
    assert parse_recipe(data, root=tmp_path).enabled() == ["export"]


def test_the_registered_run_function_is_what_runs(tmp_path, monkeypatch):
    """Replacing one entry replaces the stage: the runner calls the registered run with the planned settings."""
    seen = {}

    def fake_export(ctx):
        seen.update(to_dict(ctx.settings))
        ctx.out.mkdir(parents=True)
        (ctx.out / "model.gguf").write_bytes(b"GGUF")
        return {"gguf_bytes": 4}

    monkeypatch.setitem(STAGES, "export", replace(STAGES["export"], run=fake_export))
    r = parse_recipe({"base_model": str(tmp_path), "run_dir": str(tmp_path / "run"), "export": {"outtype": "q8_0"}},
                     root=tmp_path)
    (outcome,) = run_stages(r, plan(r), echo=lambda s: None)
    assert seen == {"outtype": "q8_0"} and outcome.manifest["metrics"] == {"gguf_bytes": 4}
    assert (tmp_path / "run" / "export" / "out" / "model.gguf").read_bytes() == b"GGUF"


def test_a_stage_without_a_plan_function_reads_the_current_model_with_its_section_as_settings(tmp_path):
    from zhllama.pipeline.stages import Planner

    assert STAGES["export"].plan is Planner.plan_model_reader  # export declares no plan of its own
    r = parse_recipe({"base_model": str(tmp_path), "run_dir": str(tmp_path / "run"), "export": {"outtype": "q8_0"}},
                     root=tmp_path)
    (export,) = plan(r)
    assert export.inputs == {"model": str(tmp_path)} and export.settings == GgufSettings(outtype="q8_0")


def test_export_after_an_unmerged_lora_sft_is_refused_before_anything_runs(tmp_path):
    r = parse_recipe({"base_model": str(tmp_path), "run_dir": str(tmp_path / "run"),
                      "sft": {"train_files": ["a.json"]}, "export": {}}, root=tmp_path)
    with pytest.raises(ZhllamaError, match="LoRA adapter is not merged.*add a merge stage"):
        plan(r)


def test_a_stage_whose_package_is_missing_is_refused_before_any_stage_runs(tmp_path, monkeypatch, tiny_model_dir):
    """The demo's dpo stage once failed at stage 7/8, minutes in: now the plan check names the package."""
    import sys

    from zhllama.pipeline import prepare

    assert STAGES["dpo"].requires == (("trl", "trl>=1.0"),) and STAGES["rm"].requires == STAGES["ppo"].requires
    r = parse_recipe({"base_model": str(tiny_model_dir), "run_dir": str(tmp_path / "run"),
                      "dpo": {"train_files": [str(tmp_path)]}}, root=tmp_path)
    assert [st.name for st in prepare(r, where="r.yaml")] == ["dpo"]  # trl is installed: the plan passes
    monkeypatch.setitem(sys.modules, "trl", None)  # as when it is not installed
    with pytest.raises(ZhllamaError, match=r"r\.yaml: stage dpo needs the Python package 'trl', which is not installed"):
        prepare(r, where="r.yaml")
    assert not (tmp_path / "run").exists()

"""The pipeline's ``prepare:`` stage: the pt corpus tokenized once into token shards, which pt then reads."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from zhllama.errors import ZhllamaError
from zhllama.pipeline import load_recipe, prepare, run_pipeline

TEXT = "builtin:people_daily?split=train&max_chars=6000"
PT = {"block_size": 32, "batch_size": 4, "max_steps": 2, "save_steps": 100, "eval_steps": 0, "logging_steps": 1,
      "lora_rank": 2, "validation_split": 0.05}


def recipe_from(data: dict, tmp_path: Path):
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return load_recipe(path)


def prepare_recipe(tmp_path: Path, model: Path, **changes) -> dict:
    data = {"run_dir": str(tmp_path / "run"), "base_model": str(model), "prepare": {"train_files": [TEXT]},
            "pt": dict(PT)}
    data.update(changes)
    return data


def manifest(tmp_path: Path, stage: str) -> dict:
    return json.loads((tmp_path / "run" / stage / "manifest.json").read_text(encoding="utf-8"))


def test_pt_trains_on_the_prepare_stages_shards_and_a_rerun_skips_both(tmp_path, tiny_model_dir):
    data = prepare_recipe(tmp_path, tiny_model_dir)
    first = run_pipeline(recipe_from(data, tmp_path), echo=lambda s: None)
    folder = (tmp_path / "run" / "prepare" / "out").resolve()
    assert first.ran == ["prepare", "pt"]
    index = json.loads((folder / "index.json").read_text(encoding="utf-8"))
    assert index["dtype"] == "uint16" and (folder / "shards" / "00000.bin").stat().st_size == 2 * index["tokens"]
    assert first.metrics("prepare")["tokens"] == index["tokens"] > 0
    pt = manifest(tmp_path, "pt")
    assert set(pt["inputs"]) == {"model", "data"} and pt["inputs"]["data"]["path"] == str(folder)
    report = json.loads((tmp_path / "run" / "pt" / "work" / "train" / "metrics.json").read_text(encoding="utf-8"))
    assert report["data"]["prepared"] == str(folder) and report["data"]["tokens"] == index["tokens"]
    assert len(first.metrics("pt")["loss_curve"]["train"]) == 2

    lines = []
    assert run_pipeline(recipe_from(data, tmp_path), echo=lines.append).ran == []
    assert lines == ["[1/2] prepare: up to date, skipped", "[2/2] pt: up to date, skipped"]
    data["pt"]["learning_rate"] = 1e-3  # a pt setting: the shards are kept
    assert run_pipeline(recipe_from(data, tmp_path), echo=lambda s: None).ran == ["pt"]
    data["prepare"]["shard_mb"] = 1.0  # a prepare setting: both run again
    assert run_pipeline(recipe_from(data, tmp_path), echo=lambda s: None).ran == ["prepare", "pt"]


def test_an_interrupted_prepare_stage_resumes_keeping_its_finished_shards(tmp_path, tiny_model_dir, monkeypatch):
    from zhllama.data import shards

    real, calls = shards.write_shard, []

    def write_one_then_stop(shard, *args, **kwargs):
        calls.append(shard.name)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(shard, *args, **kwargs)

    monkeypatch.setattr(shards, "write_shard", write_one_then_stop)
    data = prepare_recipe(tmp_path, tiny_model_dir, stages=["prepare"],
                          prepare={"train_files": [TEXT, "builtin:people_daily?split=valid&max_chars=3000"]})
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(recipe_from(data, tmp_path), echo=lambda s: None)
    first = tmp_path / "run" / "prepare" / "out" / "shards" / "00000.bin"
    assert manifest(tmp_path, "prepare")["status"] == "running" and first.is_file()
    written = first.stat().st_mtime_ns
    result = run_pipeline(recipe_from(data, tmp_path), echo=lambda s: None)
    assert result.outcomes[0].action == "resumed" and calls == ["00000", "00001", "00001"]  # shard 0 is not redone
    assert first.stat().st_mtime_ns == written and result.metrics("prepare")["shards"] == 2


def test_prepare_uses_the_tokenizer_pt_trains_with(tmp_path, tiny_model_dir):
    tok = {"corpus": ["builtin:people_daily?split=train&max_chars=20000"], "vocab_size": 1600,
           "options": {"character_coverage": 0.98}}
    run = tmp_path / "run"
    stages = {s.name: s for s in prepare(recipe_from(prepare_recipe(tmp_path, tiny_model_dir, tokenizer=tok), tmp_path))}
    assert stages["prepare"].inputs["tokenizer"] == stages["pt"].inputs["tokenizer"] == str(run / "tokenizer" / "out")
    stages = {s.name: s for s in prepare(recipe_from(prepare_recipe(tmp_path, tiny_model_dir, tokenizer=tok, resize={}),
                                                     tmp_path))}
    assert stages["prepare"].inputs["tokenizer"] == stages["pt"].inputs["model"] == str(run / "resize" / "out")
    assert "tokenizer" not in stages["pt"].inputs


def test_the_ablation_reads_the_prepare_stages_text_files(tmp_path, tiny_model_dir):
    tok = {"corpus": ["builtin:people_daily?split=train&max_chars=20000"], "vocab_size": 1600}
    data = prepare_recipe(tmp_path, tiny_model_dir, tokenizer=tok, ablation={})
    data["prepare"].update(text_field="content", skip_bad=True)
    stages = {s.name: s for s in prepare(recipe_from(data, tmp_path))}
    assert stages["ablation"].inputs["train_files"] == stages["prepare"].inputs["train_files"]
    assert (stages["ablation"].settings.train.text_field, stages["ablation"].settings.train.skip_bad) == ("content", True)
    assert stages["pt"].settings.train.text_field == "text"  # pt reads shards: its reading options are unused
    (tmp_path / "ready").mkdir()
    data = {"run_dir": str(tmp_path / "run"), "base_model": str(tiny_model_dir), "tokenizer": tok,
            "pt": {**PT, "data": "ready"}, "ablation": {}}
    with pytest.raises(ZhllamaError, match=r"ablation: pt reads a ready prepared folder \(pt.data\)"):
        prepare(recipe_from(data, tmp_path))


@pytest.mark.parametrize("changes, message", [
    ({"prepare": {"train_files": [TEXT], "shard_mbb": 8}}, r"recipe.yaml.prepare: unknown key 'shard_mbb'.*did you mean 'shard_mb'"),
    ({"prepare": {"train_files": [TEXT], "tokenizer": "tok"}}, r"recipe.yaml.prepare: 'tokenizer' is set by the pipeline"),
    ({"prepare": {"train_files": [TEXT], "num_proc": 0}}, r"recipe.yaml.prepare.num_proc 0 is out of range: it must be at least 1"),
    ({"prepare": {"weights": [1]}}, r"recipe.yaml.prepare: missing required key 'train_files'"),
])
def test_a_bad_prepare_key_is_one_error_line_from_the_cli(tmp_path, tiny_model_dir, capsys, changes, message):
    from zhllama.cli import main

    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(prepare_recipe(tmp_path, tiny_model_dir, **changes)), encoding="utf-8")
    assert main(["pipeline", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("zhllama: error: ") and re.search(message, err), err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("changes, message", [
    ({"prepare": {"train_files": [TEXT], "weights": [1, 2]}}, r"prepare.weights: 2 weights for 1 train_files entries"),
    ({"pt": {**PT, "train_files": [TEXT]}}, r"pt: 'train_files' or 'data' given, but the prepare: section makes pt's data"),
])
def test_inconsistent_prepare_and_pt_sections_are_refused_before_anything_runs(tmp_path, tiny_model_dir, changes, message):
    with pytest.raises(ZhllamaError, match=message):
        run_pipeline(recipe_from(prepare_recipe(tmp_path, tiny_model_dir, **changes), tmp_path), echo=lambda s: None)
    assert not (tmp_path / "run" / "prepare").exists()


def test_a_ready_folder_made_by_another_tokenizer_is_refused_before_anything_runs(tmp_path, tiny_model_dir,
                                                                                  tied_tokenizer_dir):
    from zhllama.data.prepare import PrepareConfig, prepare as prepare_data

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("今天天气很好。\n我们去公园散步。\n", encoding="utf-8")
    ready = tmp_path / "ready"
    prepare_data(PrepareConfig(tokenizer=str(tied_tokenizer_dir), train_files=[str(corpus)], out=str(ready)), progress=False)
    data = {"run_dir": str(tmp_path / "run"), "base_model": str(tiny_model_dir), "pt": {**PT, "data": "ready"}}
    with pytest.raises(ZhllamaError, match=r"pt.data: .*ready was prepared with another tokenizer: fingerprint \w+ "
                                           r"\(.*\), but training uses \w+"):
        run_pipeline(recipe_from(data, tmp_path), echo=lambda s: None)
    assert not (tmp_path / "run" / "pt").exists()
    data["pt"]["data"] = "corpus.txt"
    with pytest.raises(ZhllamaError, match=r"pt.data: .*corpus.txt is not a finished prepared folder"):
        run_pipeline(recipe_from(data, tmp_path), echo=lambda s: None)

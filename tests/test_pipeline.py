"""`zhllama pipeline`: recipe validation, hand-off checks, caching, --only/--from, resumption."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from zhllama.errors import ZhllamaError
from zhllama.pipeline import load_recipe, parse_recipe, prepare, run_pipeline
from zhllama.pipeline.runner import Stage, run_stages


def recipe_from(data: dict, tmp_path: Path):
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return load_recipe(path)


def small(tmp_path: Path, base: Path, **changes) -> dict:
    """A fast recipe: train a Chinese tokenizer on a little text, merge it, resize the tiny model."""
    data = {"name": "small", "run_dir": str(tmp_path / "run"), "base_model": str(base),
            "tokenizer": {"corpus": ["builtin:people_daily?split=train&max_chars=20000"], "vocab_size": 1600,
                          "options": {"character_coverage": 0.98}},
            "resize": {"init": "subword-mean"},
            "eval": {"text": ["builtin:people_daily?split=valid&max_chars=3000"]}}
    data["stages"] = ["tokenizer", "resize"]
    data.update(changes)
    return data


# --- recipe parsing -----------------------------------------------------------------------
def test_unknown_top_level_key_names_the_nearest_key(tmp_path):
    with pytest.raises(ZhllamaError, match=r"unknown key 'tokeniser'.*did you mean 'tokenizer'"):
        recipe_from({"tokeniser": {}}, tmp_path)


def test_unknown_section_key_names_the_nearest_key(tmp_path):
    with pytest.raises(ZhllamaError, match=r"resize: unknown key 'int'.*did you mean 'init'"):
        recipe_from({"tokenizer": {"path": "x"}, "resize": {"int": "mean"}}, tmp_path)


def test_unknown_training_setting_is_checked_against_train_config(tmp_path, tiny_model_dir):
    with pytest.raises(ZhllamaError, match=r"recipe.yaml.pt: unknown key 'lora_rnak'.*did you mean 'lora_rank'"):
        recipe_from({"base_model": str(tiny_model_dir), "run_dir": str(tmp_path / "run"),
                     "pt": {"train_files": ["builtin:people_daily?max_chars=100"], "lora_rnak": 8}}, tmp_path)


def test_stages_in_impossible_order_are_refused(tmp_path):
    with pytest.raises(ZhllamaError, match=r"impossible order: 'pt' cannot run after 'sft'"):
        recipe_from({"base_model": "x/y", "stages": ["sft", "pt"], "pt": {}, "sft": {}}, tmp_path)


def test_stage_without_anything_to_work_on_is_refused(tmp_path):
    with pytest.raises(ZhllamaError, match=r"stage 'pt' has nothing to work on.*'base' stage or 'base_model'"):
        recipe_from({"pt": {"train_files": ["a.txt"]}}, tmp_path)


def test_merge_without_a_lora_stage_before_it_is_refused(tmp_path):
    with pytest.raises(ZhllamaError, match=r"stage 'merge' has nothing to work on"):
        recipe_from({"base_model": "x/y", "merge": None}, tmp_path)


def test_empty_section_enables_the_stage_with_defaults(tmp_path):
    r = recipe_from({"base_model": "x/y", "tokenizer": {"path": "tok"}, "resize": None}, tmp_path)
    assert r.enabled() == ["tokenizer", "resize"]
    assert r.resize.init == "subword-mean"


def test_builtin_source_name_typo_is_reported(tmp_path, tiny_model_dir):
    r = recipe_from(small(tmp_path, tiny_model_dir, tokenizer={"corpus": ["builtin:peoples_daily"]}), tmp_path)
    with pytest.raises(ZhllamaError, match=r"unknown key 'peoples_daily'.*did you mean 'people_daily'"):
        prepare(r)


# --- hand-off checks before any compute ---------------------------------------------------
def test_missing_training_file_fails_before_any_stage_runs(tmp_path, tiny_model_dir):
    data = small(tmp_path, tiny_model_dir, stages=None)
    data["pt"] = {"train_files": ["corpus/missing.txt"], "max_steps": 1}
    with pytest.raises(ZhllamaError, match=r"pt train_files\[0\]: not found: .*corpus/missing.txt"):
        run_pipeline(recipe_from(data, tmp_path))
    assert not (tmp_path / "run" / "tokenizer").exists()


def test_base_tokenizer_larger_than_the_embeddings_is_refused(tmp_path, tiny_model_dir, mistral_sp_model):
    from zhllama.tokenizer.hf import write_hf_tokenizer

    big = write_hf_tokenizer(mistral_sp_model, tmp_path / "mistral")
    data = small(tmp_path, tiny_model_dir, base_tokenizer=str(big))
    with pytest.raises(ZhllamaError, match=r"base tokenizer .* has 32,000 tokens but the base model .* has 1,200 embedding rows"):
        run_pipeline(recipe_from(data, tmp_path))
    assert not (tmp_path / "run" / "tokenizer").exists()


def test_given_tokenizer_that_does_not_extend_the_base_is_refused(tmp_path, tiny_model_dir, mistral_sp_model):
    from zhllama.tokenizer.hf import write_hf_tokenizer

    other = write_hf_tokenizer(mistral_sp_model, tmp_path / "mistral")
    data = small(tmp_path, tiny_model_dir, tokenizer={"path": str(other)})
    with pytest.raises(ZhllamaError, match=r"does not extend the base tokenizer: .*id \d+ is"):
        run_pipeline(recipe_from(data, tmp_path))


def test_sft_template_differing_from_the_recipe_template_is_refused(tmp_path, tiny_model_dir):
    data = {"base_model": str(tiny_model_dir), "run_dir": str(tmp_path / "run"), "template": "alpaca",
            "sft": {"train_files": ["builtin:tasks?per_task=4&dev=2"], "template": "llama2-zh"}}
    with pytest.raises(ZhllamaError, match=r"sft.template is 'llama2-zh' but the recipe's template is 'alpaca'"):
        prepare(recipe_from(data, tmp_path))


@pytest.mark.parametrize("sft, message", [
    ({"then": {"train_files": ["b.json"]}}, r"sft.then: a second phase needs full-parameter training \(full: true in sft\)"),
    ({"full": True, "then": {"max_steps": 5}}, r"sft.then: no 'train_files'"),
    ({"full": True, "then": ["b.json"]}, r"sft.then: expected a mapping of training settings"),
    ({"full": True, "then": {"train_files": ["b.json"], "max_stpes": 5}}, r"sft.then: unknown key 'max_stpes'.*did you mean 'max_steps'"),
])
def test_bad_second_sft_phase_is_refused_before_anything_runs(tmp_path, tiny_model_dir, sft, message):
    for name in ("a.json", "b.json"):
        (tmp_path / name).write_text("[]", encoding="utf-8")
    data = {"base_model": str(tiny_model_dir), "run_dir": str(tmp_path / "run"), "sft": {"train_files": ["a.json"], **sft}}
    with pytest.raises(ZhllamaError, match=message):
        prepare(recipe_from(data, tmp_path))


def test_second_sft_phase_trains_from_the_first_phases_model_with_its_own_settings(tmp_path, tiny_model_dir, monkeypatch):
    import zhllama.train as train_mod

    real_train, calls = train_mod.train, []

    def recording_train(cfg, stage, callbacks=None):
        calls.append((cfg, real_train(cfg, stage, callbacks=callbacks)))
        return calls[-1][1]

    monkeypatch.setattr(train_mod, "train", recording_train)
    tasks = "builtin:tasks?split=train&per_task=8&dev=2&tasks=sentiment"
    data = {"run_dir": str(tmp_path / "run"), "base_model": str(tiny_model_dir),
            "sft": {"train_files": [tasks], "full": True, "batch_size": 4, "max_steps": 3, "learning_rate": 1e-3,
                    "save_steps": 100, "logging_steps": 1,
                    "then": {"train_files": ["builtin:continuation?n=4"], "max_steps": 2, "learning_rate": 5e-4}}}
    result = run_pipeline(recipe_from(data, tmp_path), echo=lambda s: None)
    (first, first_out), (second, second_out) = calls
    assert second.model == first_out["model_dir"]  # phase 2 starts where phase 1 ended
    assert (first.max_steps, first.learning_rate, second.max_steps, second.learning_rate) == (3, 1e-3, 2, 5e-4)
    assert second.batch_size == 4 and second.full  # the rest is inherited from the first phase
    assert [Path(f).name for f in second.train_files] == ["continuation-n4.json"]
    from safetensors.torch import load_file

    final = load_file(str(tmp_path / "run" / "sft" / "out" / "model" / "model.safetensors"))
    phase1 = load_file(str(Path(first_out["model_dir"]) / "model.safetensors"))
    assert not Path(second_out["model_dir"]).exists()  # moved into place as the stage's model ...
    assert any(not (final[k] == phase1[k]).all() for k in final)  # ... which is phase 2's, not phase 1's
    metrics = result.metrics("sft")
    assert len(metrics["loss_curve"]["train"]) == 3 and len(metrics["then"]["loss_curve"]["train"]) == 2


def test_unknown_template_is_refused(tmp_path, tiny_model_dir):
    data = small(tmp_path, tiny_model_dir, template="alpaca2")
    with pytest.raises(ZhllamaError, match=r"unknown template 'alpaca2'"):
        prepare(recipe_from(data, tmp_path))


# --- caching, --only / --from -------------------------------------------------------------
@pytest.fixture()
def small_run(tmp_path, tiny_model_dir):
    data = small(tmp_path, tiny_model_dir)
    first = run_pipeline(recipe_from(data, tmp_path), echo=lambda s: None)
    return tmp_path, data, first


def test_first_run_writes_manifests_with_checksums_settings_versions_and_metrics(small_run):
    tmp_path, _, first = small_run
    assert first.ran == ["tokenizer", "resize"]
    m = json.loads((tmp_path / "run" / "resize" / "manifest.json").read_text(encoding="utf-8"))
    assert m["status"] == "complete" and m["settings"]["init"] == "subword-mean"
    assert len(m["inputs"]["model"]["sha256"]) == 64 and "transformers" in m["versions"]
    assert m["metrics"]["new_rows"] > m["metrics"]["old_rows"] == 1200
    tok = first.metrics("tokenizer")
    assert tok["chars_per_token_after"] > tok["chars_per_token_before"]
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tmp_path / "run" / "resize" / "out")
    assert model.get_input_embeddings().weight.shape[0] == tok["vocab_after"]


def test_second_run_does_no_work_and_prints_the_same_summary(small_run):
    tmp_path, data, first = small_run
    lines = []
    second = run_pipeline(recipe_from(data, tmp_path), echo=lines.append)
    assert second.ran == [] and second.summary == first.summary
    assert lines == ["[1/2] tokenizer: up to date, skipped", "[2/2] resize: up to date, skipped"]
    assert "Chinese characters per token" in second.summary


def test_changed_setting_reruns_that_stage_only(small_run):
    tmp_path, data, _ = small_run
    data["resize"]["init"] = "mean"
    again = run_pipeline(recipe_from(data, tmp_path), echo=lambda s: None)
    assert again.ran == ["resize"] and again.metrics("resize")["init"] == "mean"


def test_changed_input_file_reruns_downstream_stages(small_run):
    tmp_path, data, _ = small_run
    data["tokenizer"]["vocab_size"] = 1700
    again = run_pipeline(recipe_from(data, tmp_path), echo=lambda s: None)
    assert again.ran == ["tokenizer", "resize"]


def test_only_reruns_one_stage_and_from_reruns_the_rest(small_run):
    tmp_path, data, _ = small_run
    assert run_pipeline(recipe_from(data, tmp_path), only="resize", echo=lambda s: None).ran == ["resize"]
    assert run_pipeline(recipe_from(data, tmp_path), start="tokenizer", echo=lambda s: None).ran == ["tokenizer", "resize"]


def test_only_refuses_when_an_earlier_stage_is_out_of_date(small_run):
    tmp_path, data, _ = small_run
    data["tokenizer"]["vocab_size"] = 1700
    with pytest.raises(ZhllamaError, match=r"stage 'tokenizer' has not run, or its inputs or settings changed"):
        run_pipeline(recipe_from(data, tmp_path), only="resize", echo=lambda s: None)


def test_only_names_an_unknown_stage(small_run):
    tmp_path, data, _ = small_run
    with pytest.raises(ZhllamaError, match=r"--only pt: not a stage of this recipe.*tokenizer, resize"):
        run_pipeline(recipe_from(data, tmp_path), only="pt", echo=lambda s: None)


# --- resumption (runner level, with a stage that is interrupted once) -------------------------
def test_interrupted_stage_resumes_and_finished_stage_is_not_rerun(tmp_path):
    # the recipe only gives the run folder; the stage under test is passed to run_stages directly
    r = parse_recipe({"run_dir": str(tmp_path / "run"), "base_model": "x/y", "export": {}}, root=tmp_path)
    calls = []

    def step(ctx):
        calls.append(ctx.resume)
        ctx.work.mkdir(parents=True, exist_ok=True)
        done = ctx.work / "half.txt"
        if not ctx.resume:
            done.write_text("first half")
            raise KeyboardInterrupt
        ctx.out.mkdir()
        (ctx.out / "result.txt").write_text(done.read_text() + " + second half")
        return {"ok": 1}

    stages = [Stage("pt", {}, {"lr": 1}, step, resumable=True)]
    with pytest.raises(KeyboardInterrupt):
        run_stages(r, stages, echo=lambda s: None)
    assert json.loads((tmp_path / "run" / "pt" / "manifest.json").read_text())["status"] == "running"
    out = run_stages(r, stages, echo=lambda s: None)
    assert calls == [False, True] and out[0].action == "resumed"
    assert (tmp_path / "run" / "pt" / "out" / "result.txt").read_text() == "first half + second half"
    assert run_stages(r, stages, echo=lambda s: None)[0].action == "cached"
    stages[0].settings["lr"] = 2  # new settings: the half-done work is not reused
    calls.clear()
    with pytest.raises(KeyboardInterrupt):
        run_stages(r, stages, echo=lambda s: None)
    assert calls == [False]


def test_cli_check_prints_the_plan_without_running(tmp_path, tiny_model_dir, capsys):
    from zhllama.cli import main

    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(small(tmp_path, tiny_model_dir)), encoding="utf-8")
    assert main(["pipeline", str(path), "--check"]) == 0
    out = capsys.readouterr().out
    assert "OK, 2 stages" in out and "resize" in out
    assert not (tmp_path / "run" / "tokenizer").exists()


def test_cli_reports_recipe_errors_in_one_line_with_exit_2(tmp_path, capsys):
    from zhllama.cli import main

    path = tmp_path / "r.yaml"
    path.write_text("base_model: x/y\nrun_dri: here\n", encoding="utf-8")
    assert main(["pipeline", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unknown key 'run_dri'" in err and "run_dir" in err


def test_interrupted_training_stage_resumes_from_its_checkpoint(tmp_path, tiny_model_dir, monkeypatch):
    import zhllama.train as train_mod
    from transformers import TrainerCallback

    class StopAtStep3(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 3:
                raise KeyboardInterrupt

    real_train = train_mod.train
    calls = []

    def train_once_interrupted(cfg, stage, callbacks=None):
        calls.append(cfg.resume)
        return real_train(cfg, stage, callbacks=[StopAtStep3()] if len(calls) == 1 else callbacks)

    monkeypatch.setattr(train_mod, "train", train_once_interrupted)
    data = {"run_dir": str(tmp_path / "run"), "base_model": str(tiny_model_dir),
            "pt": {"train_files": ["builtin:people_daily?split=train&max_chars=6000"], "block_size": 32, "batch_size": 4,
                   "max_steps": 4, "save_steps": 2, "eval_steps": 0, "logging_steps": 1, "lora_rank": 2,
                   "validation_split": 0.05}}
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(recipe_from(data, tmp_path), echo=lambda s: None)
    assert (tmp_path / "run" / "pt" / "work" / "train" / "checkpoint-2").is_dir()
    result = run_pipeline(recipe_from(data, tmp_path), echo=lambda s: None)
    assert calls == [False, True] and result.outcomes[0].action == "resumed"
    metrics = json.loads((tmp_path / "run" / "pt" / "work" / "train" / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["resumed_from"].endswith("checkpoint-2")
    assert (tmp_path / "run" / "pt" / "out" / "model" / "config.json").is_file()


def test_export_stage_writes_a_gguf_file_of_the_last_model(tmp_path, tiny_model_dir):
    data = small(tmp_path, tiny_model_dir, stages=["tokenizer", "resize", "export"], export={"outtype": "f32"})
    result = run_pipeline(recipe_from(data, tmp_path), echo=lambda s: None)
    gguf = tmp_path / "run" / "export" / "out" / "model-f32.gguf"
    assert result.ran == ["tokenizer", "resize", "export"] and gguf.read_bytes()[:4] == b"GGUF"
    assert result.metrics("export")["gguf_bytes"] == gguf.stat().st_size


def test_unknown_export_outtype_is_refused_before_anything_runs(tmp_path, tiny_model_dir):
    data = small(tmp_path, tiny_model_dir, stages=None, export={"outtype": "q3_k"})
    with pytest.raises(ZhllamaError, match=r"export.outtype: 'q3_k' is not one of"):
        run_pipeline(recipe_from(data, tmp_path), echo=lambda s: None)
    assert not (tmp_path / "run" / "tokenizer").exists()

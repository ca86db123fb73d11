"""`zhllama demo`: the embedded recipe, end to end at tiny sizes (same stages, same data sources)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from zhllama.pipeline.demo import DEMO_RECIPE, run_demo
from zhllama.pipeline import parse_recipe

REPO = Path(__file__).resolve().parent.parent


def reduced_demo(run_dir: Path):
    """The demo recipe with every size cut down so the whole pipeline runs in seconds."""
    data = yaml.safe_load(DEMO_RECIPE)
    data["run_dir"] = str(run_dir)
    data["base"].update(corpus=["builtin:stdlib_docstrings?max_chars=100000"], vocab_size=400, hidden_size=32, layers=1,
                        heads=2, intermediate_size=64, max_position=320)
    data["base"]["train"].update(block_size=64, batch_size=8, max_steps=6, save_steps=100, eval_steps=6, logging_steps=2)
    data["tokenizer"].update(corpus=["builtin:people_daily?split=train&max_chars=30000"], vocab_size=2000,
                             options={"character_coverage": 0.98})
    data["pt"].update(train_files=["builtin:people_daily?split=train&max_chars=20000"], block_size=64, batch_size=8,
                      max_steps=4, save_steps=100, eval_steps=4, logging_steps=2)
    tasks = "builtin:tasks?split={}&per_task=16&dev=10&test=12"
    pairs = "builtin:task_pairs?split={}&per_task=16&dev=10&test=12&tasks=genre"
    data["sft"].update(train_files=[tasks.format("train")], batch_size=8, max_length=256, max_steps=4, save_steps=100,
                       logging_steps=2)
    data["sft"]["then"].update(train_files=[tasks.format("train"), "builtin:continuation?n=8"], max_steps=2, save_steps=100)
    data["dpo"].update(train_files=[pairs.format("train")], max_steps=2, save_steps=100, logging_steps=1)
    data["eval"].update(pairs=pairs.format("test"), text=["builtin:people_daily?split=valid&max_chars=2000"], tasks=tasks.format("test"), max_examples=4,
                        speed_chars=8)
    return parse_recipe(data, where="reduced demo", root=run_dir)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("demo") / "run"
    lines: list[str] = []
    result = run_demo(recipe=reduced_demo(run_dir), echo=lines.append)
    return run_dir, result, "\n".join(lines)


def test_demo_runs_every_stage_and_reports_before_and_after(demo_run):
    run_dir, result, printed = demo_run
    assert result.ran == ["base", "tokenizer", "resize", "pt", "ablation", "sft", "dpo", "eval"]
    tok = result.metrics("tokenizer")
    assert tok["vocab_before"] == 400 and tok["vocab_after"] > 400
    assert tok["chars_per_token_after"] > 2 * tok["chars_per_token_before"]
    ev = result.metrics("eval")
    assert set(ev["bits_per_char"]) == {"English base", "resized", "pre-trained", "no extension (ablation)", "instruction-tuned",
                                        "preference-tuned (DPO)"}
    assert set(ev["accuracy"]) == {"before_sft", "after_sft", "after_dpo", "majority"}
    assert set(ev["accuracy"]["after_sft"]) == set(ev["accuracy"]["after_dpo"]) == {"sentiment", "genre", "pos", "all"}
    assert set(ev["pair_margin"]) == {"after_sft", "after_dpo"}
    assert ev["pair_margin"]["after_dpo"]["pairs"] == 12 and ev["pairs_split"] == "test"
    assert ev["split"] == "test" and ev["n"] == {"genre": 4, "pos": 4, "sentiment": 4}
    assert ev["pair_margin"]["after_dpo"]["mean_margin"] != ev["pair_margin"]["after_sft"]["mean_margin"]  # DPO changed the model
    assert ev["accuracy"]["majority"] == {"sentiment": 0.5, "genre": 0.5, "pos": 0.5}
    for row in ("Chinese characters per token", "validation bits/char (pre-training)", "test sentiment (正面/负面) accuracy (SFT)",
                "majority class", "test sentiment (正面/负面) accuracy (DPO)", "test preference margin, nats (DPO)",
                "validation bits/char (DPO)"):
        assert row in result.summary
    p = ev["accuracy"]["after_sft"]["sentiment"]
    assert f"{100 * p:.1f}% ± {100 * (p * (1 - p) / 4) ** 0.5:.1f} (n=4)" in result.summary.split("test sentiment (正面/负面) accuracy (SFT)")[1]
    assert "held-out" not in result.summary
    assert "| 1 | " in result.summary.split("### The first 5 test questions")[1]


def test_demo_prints_how_to_serve_the_merged_model_and_run_on_gpus(demo_run):
    run_dir, _, printed = demo_run
    final = run_dir / "dpo" / "out" / "model"  # the DPO-tuned SFT model
    assert f"zhllama serve --model {final}" in printed
    assert "zhllama pipeline chinese-llama2-7b" in printed
    assert json.loads((final / "zhllama.json").read_text(encoding="utf-8"))["template"] == "alpaca"
    from zhllama.model.load import load_model

    model, tok = load_model(final, device="cpu")
    assert model.get_input_embeddings().weight.shape[0] == len(tok)


def test_demo_writes_summary_and_loss_curves(demo_run):
    run_dir, result, _ = demo_run
    assert (run_dir / "summary.md").read_text(encoding="utf-8").strip() == result.summary.strip()
    png = run_dir / "loss_curves.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for stage in ("base", "pt", "sft"):
        assert result.metrics(stage)["loss_curve"]["train"]
    assert result.metrics("sft")["then"]["loss_curve"]["train"]  # the rehearsal phase ran too


def test_second_demo_run_does_no_work_and_prints_the_same_summary(demo_run):
    run_dir, first, _ = demo_run
    lines: list[str] = []
    again = run_demo(recipe=reduced_demo(run_dir), echo=lines.append)
    assert again.ran == [] and again.summary == first.summary
    assert "nothing to do: every stage is up to date" in lines


def test_recipes_demo_yaml_is_the_embedded_recipe():
    assert (REPO / "recipes" / "demo.yaml").read_text(encoding="utf-8") == DEMO_RECIPE


def test_demo_print_recipe_cli(capsys):
    from zhllama.cli import main

    assert main(["demo", "--print-recipe"]) == 0
    assert capsys.readouterr().out == DEMO_RECIPE


def test_ablation_arm_trains_the_base_with_its_own_tokenizer_on_the_same_characters(demo_run):
    run_dir, result, _ = demo_run
    assert result.ran.index("ablation") == result.ran.index("pt") + 1
    manifest = json.loads((run_dir / "ablation" / "manifest.json").read_text(encoding="utf-8"))
    pt_manifest = json.loads((run_dir / "pt" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["inputs"]["model"]["path"] == str(run_dir / "base" / "out")
    assert manifest["inputs"]["extended_tokenizer"]["path"] == str(run_dir / "resize" / "out")
    (text,) = manifest["inputs"]["train_files"]  # the pt stage's text, each file with its checksum
    assert manifest["inputs"]["train_files"] == pt_manifest["inputs"]["train_files"] and len(text["sha256"]) == 64
    arms = result.metrics("ablation")["arms"]
    pt, ab = arms["pt"], arms["ablation"]
    assert pt["chars_per_token"] > 2 * ab["chars_per_token"]  # bytes: about 3x the tokens
    assert ab["steps"] > 2 * pt["steps"]
    chars_per_step = ab["tokens_per_step"] * ab["chars_per_token"]
    assert abs(ab["characters_seen"] - pt["characters_seen"]) <= chars_per_step  # the same characters, to one step
    from zhllama.model.load import load_model

    model, tok = load_model(run_dir / "ablation" / "out" / "model", device="cpu")
    assert len(tok) == 400 and model.get_input_embeddings().weight.shape[0] == 400  # no extension


def test_summary_compares_the_arms_side_by_side(demo_run):
    _, result, _ = demo_run
    ev = result.metrics("eval")
    assert set(ev["arms"]) == {"pt", "ablation"}
    for arm in ("pt", "ablation"):  # 3 prompts, at most 8 Chinese characters each, within 8 tokens per character
        gen = ev["arms"][arm]
        assert gen["seconds"] > 0 and 0 <= gen["chars"] <= 3 * 8 and 3 <= gen["tokens"] <= 3 * 8 * 8
        assert gen["chars_per_second"] == pytest.approx(gen["chars"] / gen["seconds"], rel=0.01, abs=0.1)  # seconds are stored rounded
        assert gen["tokens_per_second"] == pytest.approx(gen["tokens"] / gen["seconds"], rel=0.01, abs=0.1)
        assert gen["text_chars_per_second"] == pytest.approx(gen["tokens_per_second"] * gen["chinese_chars_per_token"],
                                                             rel=0.01, abs=0.1)
    assert ev["arms"]["pt"]["context_chars"] > 2 * ev["arms"]["ablation"]["context_chars"]
    assert "no extension (ablation)" in ev["bits_per_char"]
    section = result.summary.split("### Vocabulary extension")[1].split("###")[0]
    for row in ("characters seen in training", "training wall time", "validation bits/char",
                "tokens decoded per second", "Chinese characters per second at the validation text's characters per token",
                "Chinese characters generated per second", "Chinese characters per context window"):
        assert row in section


def test_showcase_is_the_first_test_questions_whatever_the_answers(demo_run):
    run_dir, result, _ = demo_run
    (path,) = (run_dir / "data").glob("tasks-*splittest*.json")
    test = json.loads(path.read_text(encoding="utf-8"))
    shown = result.metrics("eval")["showcase"]
    assert [r["input"] for r in shown] == [r["input"] for r in test[:5]]
    assert all(r["correct"] == (r["answer"] == r["expected"]) for r in shown)
    assert "### The first 5 test questions" in result.summary
    for r in shown:
        assert ("✓" if r["correct"] else "✗") in result.summary.split(r["input"][:10])[1].splitlines()[0]


def test_demo_writes_the_bits_per_char_plot_and_names_it(demo_run):
    run_dir, result, _ = demo_run
    assert (run_dir / "bits_per_char.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Plot: bits_per_char.png" in result.summary
    cont = result.metrics("eval")["continuation"]
    assert set(cont["text"]) == {"English base", "pre-trained"} and cont["prompt"] == "中国经济"


def test_the_demo_recipe_scores_a_test_split_that_no_training_file_draws_from():
    """Every builtin:tasks / task_pairs source of the recipe names the same dev and test sizes; eval reads test."""
    from urllib.parse import parse_qsl

    data = yaml.safe_load(DEMO_RECIPE)
    specs = data["sft"]["train_files"] + data["sft"]["then"]["train_files"] + data["dpo"]["train_files"]
    specs = [s for s in specs if s.startswith("builtin:task")] + [data["eval"]["tasks"], data["eval"]["pairs"]]
    opts = [dict(parse_qsl(s.partition("?")[2])) for s in specs]
    assert len({(o["dev"], o["test"]) for o in opts}) == 1
    assert [o["split"] for o in opts] == ["train"] * (len(opts) - 2) + ["test", "test"]
    assert data["eval"]["max_examples"] == int(opts[-1]["test"])  # every test question is scored


def test_summary_shows_each_accuracy_with_its_standard_error_and_n():
    from zhllama.pipeline.summary import build_summary

    ev = {"accuracy": {"before_sft": {"sentiment": 0.5, "all": 0.5}, "after_sft": {"sentiment": 0.68, "all": 0.68},
                       "after_dpo": {"sentiment": 0.7, "all": 0.7}, "majority": {"sentiment": 0.5}},
          "n": {"sentiment": 200}, "split": "test", "examples": 200,
          "showcase": [{"input": "好", "instruction": "", "expected": "正面", "answer": "正面", "correct": True, "task": "sentiment"}]}
    summary = build_summary("demo", {"eval": {"metrics": ev}})
    row = next(line for line in summary.splitlines() if "test sentiment (正面/负面) accuracy (SFT)" in line)
    assert "50.0% ± 3.5 (n=200)" in row and "68.0% ± 3.3 (n=200)" in row and "majority class: 50.0%" in row
    assert "70.0% ± 3.2 (n=200)" in next(line for line in summary.splitlines() if "accuracy (DPO)" in line)
    assert ("### The first 1 test questions (1/1 right here; test accuracy over 200 questions: "
            "sentiment (正面/负面) 70.0% ± 3.2 (n=200))") in summary
    # a run recorded before n and the split were: plain percentages, labelled held-out
    old = build_summary("demo", {"eval": {"metrics": {k: v for k, v in ev.items() if k not in ("n", "split")}}})
    assert "held-out sentiment (正面/负面) accuracy (SFT) | 50.0%  " in old and "±" not in old

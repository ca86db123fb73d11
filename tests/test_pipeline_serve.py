"""The pipeline's serve stage: the final model behind `zhllama serve`'s API, asked over HTTP, its prompt
checked against the saved tokenizer's own chat template."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from transformers import AutoTokenizer

from zhllama.errors import ZhllamaError
from zhllama.meta import write_meta
from zhllama.pipeline import load_recipe, run_pipeline

QUESTIONS = ["请用一句话介绍一下长城。", "What is 2 + 2?"]


def serve_recipe(tmp_path: Path, model: Path, **serve) -> Path:
    path = tmp_path / "recipe.yaml"
    data = {"name": "served", "run_dir": str(tmp_path / "run"), "base_model": str(model), "template": "llama3",
            "serve": {"messages": QUESTIONS, "max_tokens": 4, **serve}}
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def test_serve_stage_answers_over_http_with_the_saved_tokenizers_prompt(tmp_path, family_model_dirs):
    model = family_model_dirs["llama"]
    result = run_pipeline(load_recipe(serve_recipe(tmp_path, model, system="你是一个助手。")), echo=lambda s: None)
    record = json.loads((tmp_path / "run" / "serve" / "out" / "serve.json").read_text(encoding="utf-8"))
    tok = AutoTokenizer.from_pretrained(model)
    expected = [len(tok.apply_chat_template([{"role": "system", "content": "你是一个助手。"}, {"role": "user", "content": q}],
                                            add_generation_prompt=True, tokenize=True)["input_ids"]) for q in QUESTIONS]
    metrics = result.metrics("serve")
    assert metrics["template"] == record["template"] == "llama3"
    assert metrics["prompt_tokens"] == expected and len(set(expected)) == 2
    assert all(0 < n <= 4 for n in metrics["completion_tokens"])
    assert [e["messages"][-1]["content"] for e in record["exchanges"]] == QUESTIONS
    assert record["command"] == f"zhllama serve --model {model}"
    assert "Served (serve/out/serve.json)" in (tmp_path / "run" / "summary.md").read_text(encoding="utf-8")


def test_served_prompt_that_disagrees_with_the_saved_chat_template_stops_the_run(tmp_path, family_model_dirs):
    model = tmp_path / "model"
    shutil.copytree(family_model_dirs["llama"], model)
    write_meta(model, template="alpaca")  # served as alpaca; tokenizer_config's chat_template is Llama-3's
    with pytest.raises(ZhllamaError, match=r"serve: the server built a \d+-token prompt with template alpaca, but the "
                                           r"saved tokenizer's chat_template gives \d+ tokens"):
        run_pipeline(load_recipe(serve_recipe(tmp_path, model)), echo=lambda s: None)
    assert not (tmp_path / "run" / "serve" / "out" / "serve.json").exists()


def test_empty_message_list_is_refused(tmp_path, family_model_dirs):
    with pytest.raises(ZhllamaError, match="serve: messages is empty"):
        run_pipeline(load_recipe(serve_recipe(tmp_path, family_model_dirs["llama"], messages=[])), echo=lambda s: None)

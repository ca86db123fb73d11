"""Every stage on every family: a tiny model of each goes init -> sft (2 steps) -> merge -> serve.

The sft run takes no ``--template``: the template default rule gives the family's (llama3 on the
Llama-3-shaped vocabulary, qwen on Qwen2's), or ``native`` where the test asks for it.  The merged
folder records the template and carries it as Jinja, and the server counts exactly the prompt ids
``apply_chat_template(messages, add_generation_prompt=True)`` of the saved tokenizer gives.
"""

from __future__ import annotations

import json

import pytest

from zhllama.cli import main

MESSAGES = [{"role": "system", "content": "你是一个乐于助人的助手。"}, {"role": "user", "content": "你好，请介绍一下北京。"},
            {"role": "assistant", "content": "北京是中国的首都。"}, {"role": "user", "content": "谢谢 thanks"}]


@pytest.fixture(scope="module")
def sft_file(tmp_path_factory):
    records = [{"instruction": f"问题 {i}：北京在哪里？", "input": "", "output": f"北京在中国北方。{i}"} for i in range(16)]
    p = tmp_path_factory.mktemp("sft") / "sft.json"
    p.write_text(json.dumps(records, ensure_ascii=False), encoding="utf-8")
    return p


@pytest.mark.parametrize("family, template, expected", [
    ("llama", None, "llama3"), ("qwen2", None, "qwen"), ("qwen3", "native", "native")])
def test_init_sft_merge_serve(family, template, expected, family_model_dirs, sft_file, tmp_path):
    from fastapi.testclient import TestClient
    from transformers import AutoTokenizer

    from zhllama.infer.engine import Engine
    from zhllama.serve.config import ApiSettings
    from zhllama.serve.openai import create_app

    base = family_model_dirs[family]
    run = tmp_path / "run"
    args = ["train", "sft", "--model", str(base), "--train-files", str(sft_file), "--output-dir", str(run),
            "--max-steps", "2", "--batch-size", "2", "--max-length", "64", "--lora-rank", "4", "--logging-steps", "1",
            "--validation-split", "0", "--cache-dir", str(tmp_path / "cache")]
    assert main(args + (["--template", template] if template else [])) == 0
    adapter = run / "final"
    assert json.loads((adapter / "zhllama.json").read_text())["template"] == expected
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert set(config["target_modules"]) == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}

    merged = tmp_path / "merged"
    assert main(["merge", "--base", str(base), "--lora", str(adapter), "--out", str(merged)]) == 0
    assert json.loads((merged / "zhllama.json").read_text())["template"] == expected
    assert json.loads((merged / "config.json").read_text())["model_type"] == family

    engine = Engine.load(merged, device="cpu")
    assert engine.template.name == expected
    settings = ApiSettings(model_name="m", max_request_bytes=50_000, max_prompt_tokens=400, max_tokens=4)
    with TestClient(create_app(engine, settings)) as client:
        r = client.post("/v1/chat/completions", json={"model": "m", "messages": MESSAGES, "max_tokens": 4,
                                                      "temperature": 0})
    assert r.status_code == 200, r.text
    saved = AutoTokenizer.from_pretrained(merged)
    expected_ids = saved.apply_chat_template(MESSAGES, add_generation_prompt=True, tokenize=True, return_dict=False)
    assert r.json()["usage"]["prompt_tokens"] == len(expected_ids)
    assert engine.chat_prompt(MESSAGES, 4) == list(expected_ids)

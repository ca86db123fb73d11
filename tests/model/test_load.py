"""The one loading module: adapters trained on a padded or grown vocabulary load everywhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from zhllama.errors import ZhllamaError


@pytest.fixture(scope="module")
def padded_adapter(tmp_path_factory, tiny_model_dir, builtin_text):
    """A pt LoRA adapter trained with pad_vocab_to_multiple_of=64: 1,200 rows padded to 1,216."""
    from zhllama.train import TrainConfig, train

    root = tmp_path_factory.mktemp("padded")
    corpus = root / "corpus.txt"
    corpus.write_text("\n".join(builtin_text["zh"][:40]) + "\n", encoding="utf-8")
    cfg = TrainConfig(model=str(tiny_model_dir), train_files=[str(corpus)], output_dir=str(root / "run"),
                      block_size=64, batch_size=2, max_steps=2, lora_rank=4, save_steps=1000, logging_steps=1,
                      pad_vocab_to_multiple_of=64, validation_split=0.0, cache_dir=str(root / "cache"))
    return train(cfg, "pt")["model_dir"]


def test_padded_adapter_carries_padded_rows(padded_adapter):
    meta = json.loads(open(f"{padded_adapter}/zhllama.json").read())
    assert meta["vocab_size"] == 1216 and meta["tokenizer_size"] == 1200


def test_engine_loads_adapter_trained_with_padded_vocabulary(tiny_model_dir, padded_adapter):
    from zhllama.infer.engine import Engine
    from zhllama.infer.sampling import SamplingParams

    engine = Engine.load(tiny_model_dir, lora=padded_adapter, template="none", device="cpu")
    assert engine.model.get_input_embeddings().weight.shape[0] == 1216
    (done,) = engine.generate([engine.text_prompt("中国")], SamplingParams(max_new_tokens=4, temperature=0.0))
    assert done.completion_tokens > 0


def test_generate_cli_with_padded_adapter(tiny_model_dir, padded_adapter, tmp_path):
    inp, out = tmp_path / "in.txt", tmp_path / "out.jsonl"
    inp.write_text("中国\n", encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "zhllama", "generate", "--model", str(tiny_model_dir), "--lora",
                           str(padded_adapter), "--input", str(inp), "--output", str(out), "--max-new-tokens", "3",
                           "--temperature", "0", "--device", "cpu"],
                          capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=300)
    assert proc.returncode == 0, proc.stderr
    (row,) = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert row["prompt"] == "中国" and "output" in row

"""``train --rope-scaling``: the scaling trained with reaches config.json, merge, GGUF and the engine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from zhllama.rope_scaling import RopeScaling
from zhllama.train import train


def _rope(folder) -> dict:
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    assert config["max_position_embeddings"] == 512  # the original length; the factor says how far beyond
    return config.get("rope_parameters") or {}


@pytest.fixture(scope="module")
def yarn_full(tmp_path_factory, tiny_model_dir, pt_corpus, tiny_config):
    out = tmp_path_factory.mktemp("rope-full") / "run"
    return train(tiny_config(tiny_model_dir, [pt_corpus], out, full=True, max_steps=2, rope_scaling=RopeScaling.from_text("YaRN:2")), "pt")


def test_full_model_saves_yarn_in_config_json(yarn_full):
    from pathlib import Path

    rope = _rope(Path(yarn_full["model_dir"]))
    assert rope["rope_type"] == "yarn" and rope["factor"] == 2.0 and rope["original_max_position_embeddings"] == 512


def test_engine_loads_the_saved_scaling(yarn_full, tiny_model_dir):
    """serve/chat/generate load through Engine.load: the context is positions x factor, longer prompts run."""
    from zhllama.infer.engine import Engine
    from zhllama.infer.sampling import SamplingParams

    engine = Engine.load(yarn_full["model_dir"])
    assert engine.context_length == 1024 and engine.model.model.rotary_emb.rope_type == "yarn"
    [c] = engine.generate([[1] + [100, 200, 300] * 250], SamplingParams(max_new_tokens=2, temperature=0))
    assert c.prompt_tokens == 751 and c.completion_tokens == 2
    assert Engine.load(tiny_model_dir).context_length == 512


def test_gguf_carries_llama_cpp_rope_scaling_keys(yarn_full, tmp_path):
    from gguf import GGUFReader

    from zhllama.export import export_gguf

    path = export_gguf(yarn_full["model_dir"], tmp_path / "m.gguf", outtype="f32", progress=False)
    meta = {k: f.contents() for k, f in GGUFReader(str(path)).fields.items()}
    assert meta["llama.rope.scaling.type"] == "yarn" and meta["llama.rope.scaling.factor"] == 2.0
    assert meta["llama.rope.scaling.original_context_length"] == 512 and meta["llama.context_length"] == 512


def test_lora_adapter_records_scaling_and_merge_carries_it(tmp_path, tiny_model_dir, pt_corpus, tiny_config):
    from zhllama.infer.engine import Engine
    from zhllama.meta import read_meta
    from zhllama.train.merge import merge_adapters

    adapter = train(tiny_config(tiny_model_dir, [pt_corpus], tmp_path / "run", max_steps=1,
                                rope_scaling=RopeScaling.from_text("linear:2")), "pt")["model_dir"]
    assert read_meta(adapter).rope_scaling == RopeScaling("linear", 2.0)
    assert json.loads((Path(adapter) / "zhllama.json").read_text())["rope_scaling"] == "linear:2"  # as text on disk
    merged = merge_adapters(str(tiny_model_dir), [adapter], tmp_path / "merged")
    rope = _rope(merged)
    assert rope["rope_type"] == "linear" and rope["factor"] == 2.0
    engine = Engine.load(tiny_model_dir, lora=adapter)  # unmerged: the adapter scales its base
    assert engine.context_length == 1024 and engine.model.config.rope_parameters["rope_type"] == "linear"

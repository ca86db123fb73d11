"""The model-family registry: ``model init --family``, the architecture checks, LoRA targets and the
template default rule (zhllama.json, else the family's default, else none)."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from zhllama.cli import main
from zhllama.errors import ZhllamaError
from zhllama.meta import write_meta
from zhllama.model.families import FAMILIES, family_of_folder, lora_targets, resolve_template
from zhllama.model.load import load_model
from zhllama.templates import get_template


def test_init_writes_each_family(family_model_dirs):
    expect = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM", "qwen3": "Qwen3ForCausalLM"}
    for family, folder in family_model_dirs.items():
        config = json.loads((folder / "config.json").read_text())
        assert config["architectures"] == [expect[family]] and config["num_key_value_heads"] == 2
        assert family_of_folder(folder).name == family
        model, tok = load_model(folder, device="cpu")
        names = {n for n, _ in model.named_parameters()}
        assert ("model.layers.0.self_attn.q_proj.bias" in names) == (family == "qwen2")
        assert ("model.layers.0.self_attn.q_norm.weight" in names) == (family == "qwen3")
        assert model(torch.tensor([[1, 2, 3]])).logits.shape == (1, 3, len(tok))
        assert sorted(lora_targets(model)) == sorted(FAMILIES[family].lora_targets)


def test_llama_family_has_llama3_rope(family_model_dirs):
    rope = json.loads((family_model_dirs["llama"] / "config.json").read_text())["rope_parameters"]
    assert rope["rope_type"] == "llama3" and rope["factor"] == 8.0 and rope["rope_theta"] == 500000.0


def test_family_default_template_follows_the_vocabulary(family_model_dirs, tiny_model_dir):
    assert resolve_template(family_model_dirs["llama"]) == "llama3"  # Llama-3's header tokens are in the vocabulary
    assert resolve_template(family_model_dirs["qwen2"]) == "qwen"
    assert resolve_template(family_model_dirs["qwen3"]) == "qwen"
    assert resolve_template(tiny_model_dir) == "none"  # LLaMA-1/2 (SentencePiece): no chat format of its own
    saved = json.loads((family_model_dirs["qwen2"] / "tokenizer_config.json").read_text())["chat_template"]
    assert saved == get_template("qwen").jinja("")  # model init writes the family's template as Jinja


def test_template_default_rule_order(family_model_dirs, tmp_path):
    """--template, else the adapter's then the model's zhllama.json, else the family's, else none."""
    d = tmp_path / "m"
    shutil.copytree(family_model_dirs["qwen2"], d)
    assert resolve_template(d) == "qwen"
    write_meta(d, template="chatml")
    assert resolve_template(d) == "chatml"
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    write_meta(adapter, template="native")
    assert resolve_template(d, adapter) == "native"
    assert resolve_template(d, adapter, "none") == "none"
    assert resolve_template(tmp_path / "not-a-model") == "none"


def test_init_unknown_family_is_one_line(tiny_tokenizer_dir, tmp_path, capsys):
    out = tmp_path / "m"
    assert main(["model", "init", "--family", "gpt9", "--tokenizer", str(tiny_tokenizer_dir), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("zhllama: error: unknown model family 'gpt9'") and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_init_cli_writes_qwen3(byte_level_tokenizer_dirs, tmp_path):
    out = tmp_path / "q3"
    assert main(["model", "init", "--family", "qwen3", "--tokenizer", str(byte_level_tokenizer_dirs["qwen2"]),
                 "--hidden-size", "32", "--layers", "1", "--heads", "2", "--out", str(out)]) == 0
    assert json.loads((out / "config.json").read_text())["model_type"] == "qwen3"


def test_unknown_architecture_is_refused_before_weights(tiny_model_dir, tmp_path, capsys, monkeypatch):
    d = tmp_path / "m"
    shutil.copytree(tiny_model_dir, d)
    config = json.loads((d / "config.json").read_text())
    (d / "config.json").write_text(json.dumps({**config, "model_type": "gpt9", "architectures": ["Gpt9ForCausalLM"]}))
    import transformers

    def no_weights(*a, **k):  # pragma: no cover - reached only if the check is gone
        raise AssertionError("weights were read")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", no_weights)
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("你好\n"))
    assert main(["chat", "--model", str(d), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "'Gpt9ForCausalLM' is not a model family zhllama knows" in err and len(err.strip().splitlines()) == 1


def test_template_that_does_not_fit_is_refused_before_weights(tiny_model_dir, tmp_path, monkeypatch):
    import transformers

    from zhllama.infer.engine import Engine

    def no_weights(*a, **k):  # pragma: no cover - reached only if the check is gone
        raise AssertionError("weights were read")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", no_weights)
    with pytest.raises(ZhllamaError, match=r"no <\|start_header_id\|> token"):
        Engine.load(tiny_model_dir, template="llama3", device="cpu")
    d = tmp_path / "m"
    shutil.copytree(tiny_model_dir, d)
    config = json.loads((d / "tokenizer_config.json").read_text())
    config.pop("chat_template")
    (d / "tokenizer_config.json").write_text(json.dumps(config))
    with pytest.raises(ZhllamaError, match="native: the tokenizer has no chat_template"):
        Engine.load(d, template="native", device="cpu")

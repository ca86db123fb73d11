"""GGUF export: bad input gives one-line errors, and nothing half-written is left behind."""

from __future__ import annotations

import json

import pytest
from export_models import copy_model, edit_config, edit_weights

import zhllama.export.gguf as export_mod
from zhllama.cli import main
from zhllama.errors import ZhllamaError
from zhllama.export import export_gguf


@pytest.fixture
def model_copy(tiny_model_dir, tmp_path):
    return copy_model(tiny_model_dir, tmp_path / "model")


def _export(model_dir, out, **kw):
    return export_gguf(model_dir, out, outtype=kw.pop("outtype", "f16"), progress=False, **kw)


def test_cli_writes_file_and_refuses_to_overwrite(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "m.gguf"
    args = ["export", "gguf", "--model", str(tiny_model_dir), "--out", str(out), "--outtype", "q4_0"]
    assert main(args) == 0
    assert out.is_file() and "q4_0" in capsys.readouterr().out
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "already exists" in err and len(err.strip().splitlines()) == 1
    assert main(args + ["--overwrite"]) == 0


def test_missing_tokenizer_model(model_copy, tmp_path):
    (model_copy / "tokenizer.model").unlink()
    with pytest.raises(ZhllamaError, match="no tokenizer.model"):
        _export(model_copy, tmp_path / "x.gguf")


def test_unknown_architecture(model_copy, tmp_path, capsys):
    edit_config(model_copy, model_type="mistral", architectures=["MistralForCausalLM"])
    assert main(["export", "gguf", "--model", str(model_copy), "--out", str(tmp_path / "x.gguf")]) == 2
    err = capsys.readouterr().err
    assert "'MistralForCausalLM' is not a model family zhllama knows" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.gguf").exists()


def test_family_llama_cpp_does_not_run(model_copy, tmp_path, capsys, monkeypatch):
    """A family in the registry whose GGUF architecture llama.cpp lacks is refused before anything is written."""
    import dataclasses

    from zhllama.model import families

    monkeypatch.setitem(families.FAMILIES, "llama", dataclasses.replace(families.FAMILIES["llama"], gguf_arch="llama9"))
    assert main(["export", "gguf", "--model", str(model_copy), "--out", str(tmp_path / "x.gguf")]) == 2
    err = capsys.readouterr().err
    assert "llama.cpp has no architecture for the llama family" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.gguf").exists()


def test_more_pieces_than_embedding_rows(model_copy, tmp_path):
    def shrink(t):
        return {k: (v[:1100].contiguous() if k in ("model.embed_tokens.weight", "lm_head.weight") else v)
                for k, v in t.items()}

    edit_weights(model_copy, shrink)
    edit_config(model_copy, vocab_size=1100)
    with pytest.raises(ZhllamaError, match="1200 pieces but the model's embeddings have only 1100 rows"):
        _export(model_copy, tmp_path / "x.gguf")


def test_lora_adapter_folder(tmp_path):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    with pytest.raises(ZhllamaError, match="LoRA adapter: merge it"):
        _export(adapter, tmp_path / "x.gguf")


def test_missing_layer_tensor(model_copy, tmp_path):
    edit_weights(model_copy, lambda t: {k: v for k, v in t.items() if "layers.1.mlp.up_proj" not in k})
    with pytest.raises(ZhllamaError, match="lacks 1 llama tensors .first: blk.1.ffn_up.weight"):
        _export(model_copy, tmp_path / "x.gguf")


def test_unknown_tensor(model_copy, tmp_path):
    import torch

    edit_weights(model_copy, lambda t: {**t, "model.vision_tower.weight": torch.zeros(2, 2)})
    with pytest.raises(ZhllamaError, match="'model.vision_tower.weight' has no place"):
        _export(model_copy, tmp_path / "x.gguf")


def test_unsupported_rope_scaling(model_copy, tmp_path):
    edit_config(model_copy, rope_scaling={"type": "dynamic", "factor": 2.0})
    with pytest.raises(ZhllamaError, match="rope scaling 'dynamic' is not supported"):
        _export(model_copy, tmp_path / "x.gguf")


def test_bad_config_json_names_the_line(model_copy, tmp_path):
    (model_copy / "config.json").write_text('{\n  "model_type": "llama",\n  oops\n}')
    with pytest.raises(ZhllamaError, match=r"config.json:3: not valid JSON"):
        _export(model_copy, tmp_path / "x.gguf")


def test_out_is_a_folder(tiny_model_dir, tmp_path):
    with pytest.raises(ZhllamaError, match="--out is a folder"):
        _export(tiny_model_dir, tmp_path)


def test_failure_mid_write_leaves_old_file_and_no_partial(tiny_model_dir, tmp_path, monkeypatch):
    out = tmp_path / "m.gguf"
    out.write_bytes(b"previous export")
    calls = []

    def failing_convert(data, qtype):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real(data, qtype)

    real = export_mod.convert
    monkeypatch.setattr(export_mod, "convert", failing_convert)
    with pytest.raises(KeyboardInterrupt):
        _export(tiny_model_dir, out, overwrite=True)
    assert out.read_bytes() == b"previous export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.gguf"]


def test_tied_embeddings_write_no_output_tensor(model_copy, tmp_path):
    from gguf import GGUFReader

    edit_weights(model_copy, lambda t: {k: v for k, v in t.items() if k != "lm_head.weight"})
    edit_config(model_copy, tie_word_embeddings=True)
    names = [t.name for t in GGUFReader(str(_export(model_copy, tmp_path / "x.gguf"))).tensors]
    assert "output.weight" not in names and names[0] == "token_embd.weight"
    edit_config(model_copy, tie_word_embeddings=False)
    with pytest.raises(ZhllamaError, match="first: output.weight"):
        _export(model_copy, tmp_path / "y.gguf")


def test_special_token_ids_follow_tokenizer_config(model_copy, tmp_path):
    from gguf import GGUFReader

    cfg = json.loads((model_copy / "tokenizer_config.json").read_text())
    cfg.update(eos_token={"content": "<unk>"}, add_eos_token=True)  # odd on purpose: the file is the authority
    (model_copy / "tokenizer_config.json").write_text(json.dumps(cfg))
    fields = GGUFReader(str(_export(model_copy, tmp_path / "x.gguf"))).fields
    assert fields["tokenizer.ggml.eos_token_id"].contents() == 0
    assert fields["tokenizer.ggml.add_eos_token"].contents() is True

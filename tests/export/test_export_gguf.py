"""GGUF export: metadata, tensors, vocabulary, and logits of an independent llama.cpp-style forward."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from export_llama_ref import forward, read_gguf
from export_models import copy_model, edit_config, edit_weights, pad_vocab, sharpen
from gguf import GGMLQuantizationType as Q
from gguf import GGUFReader, TokenType

import zhllama.export.gguf as export_mod
from zhllama.export import export_gguf
from zhllama.tokenizer.spm import load_proto

TEXT = "The quick brown fox 跳过了懒狗。 def main(): return 42"


@pytest.fixture(scope="module")
def sharp_model_dir(tiny_model_dir, tmp_path_factory):
    d = copy_model(tiny_model_dir, tmp_path_factory.mktemp("sharp") / "model")
    edit_weights(d, sharpen)
    return d


@pytest.fixture(scope="module")
def hf_logits(sharp_model_dir, tiny_tokenizer):
    from transformers import LlamaForCausalLM

    model = LlamaForCausalLM.from_pretrained(sharp_model_dir, dtype=torch.float32).eval()
    ids = tiny_tokenizer(TEXT)["input_ids"]
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].numpy()
    return ids, logits


@pytest.fixture(scope="module")
def exported(sharp_model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("gguf")
    return {t: export_gguf(sharp_model_dir, out / f"m-{t}.gguf", outtype=t, progress=False)
            for t in ("f32", "f16", "bf16", "q8_0", "q4_0")}


def _fields(path):
    return {k: f.contents() for k, f in GGUFReader(str(path)).fields.items()}


def test_metadata_matches_config(exported, sharp_model_dir):
    cfg = json.loads((sharp_model_dir / "config.json").read_text())
    meta = _fields(exported["q8_0"])
    assert meta["general.architecture"] == "llama"
    assert meta["general.file_type"] == 7  # MOSTLY_Q8_0
    assert meta["llama.context_length"] == cfg["max_position_embeddings"]
    assert meta["llama.embedding_length"] == cfg["hidden_size"]
    assert meta["llama.block_count"] == cfg["num_hidden_layers"]
    assert meta["llama.feed_forward_length"] == cfg["intermediate_size"]
    assert meta["llama.attention.head_count"] == 4
    assert meta["llama.attention.head_count_kv"] == 2  # GQA
    assert meta["llama.rope.dimension_count"] == 16
    assert meta["llama.rope.freq_base"] == 10000.0
    assert meta["llama.attention.layer_norm_rms_epsilon"] == pytest.approx(1e-5)
    assert meta["llama.vocab_size"] == cfg["vocab_size"]
    assert "llama.rope.scaling.type" not in meta


def test_tensor_names_shapes_and_types(exported):
    by_type = {}
    for outtype, path in exported.items():
        tensors = {t.name: t for t in GGUFReader(str(path)).tensors}
        names = list(tensors)
        assert names[0] == "token_embd.weight" and names[-2:] == ["output_norm.weight", "output.weight"]
        assert len(names) == 2 + 9 * 2 + 1
        assert list(tensors["blk.1.attn_k.weight"].shape) == [64, 32]  # ne0 = row length, 2 kv heads x 16
        assert list(tensors["blk.0.ffn_down.weight"].shape) == [128, 64]
        assert list(tensors["token_embd.weight"].shape) == [64, 1200]
        assert tensors["blk.0.attn_norm.weight"].tensor_type == Q.F32  # norms stay f32
        by_type[outtype] = (tensors["blk.0.attn_q.weight"].tensor_type, tensors["output.weight"].tensor_type)
    assert by_type == {"f32": (Q.F32, Q.F32), "f16": (Q.F16, Q.F16), "bf16": (Q.BF16, Q.BF16),
                       "q8_0": (Q.Q8_0, Q.Q8_0), "q4_0": (Q.Q4_0, Q.Q8_0)}
    sizes = {t: p.stat().st_size for t, p in exported.items()}
    assert sizes["f16"] == sizes["bf16"]
    assert sizes["f32"] > sizes["f16"] > sizes["q8_0"] > sizes["q4_0"]


def test_vocabulary_is_sentencepiece(exported, sharp_model_dir, tiny_tokenizer):
    proto = load_proto(sharp_model_dir / "tokenizer.model")
    meta = _fields(exported["f16"])
    assert meta["tokenizer.ggml.model"] == "llama"
    assert meta["tokenizer.ggml.tokens"] == [p.piece for p in proto.pieces]
    assert np.allclose(meta["tokenizer.ggml.scores"], [p.score for p in proto.pieces])
    types = meta["tokenizer.ggml.token_type"]
    assert types[0] == TokenType.UNKNOWN and types[1] == types[2] == TokenType.CONTROL
    assert types.count(TokenType.BYTE) == 256
    sp_type_names = {1: "NORMAL", 2: "UNKNOWN", 3: "CONTROL", 4: "USER_DEFINED", 5: "UNUSED", 6: "BYTE"}
    assert [TokenType(t).name for t in types] == [sp_type_names[p.type] for p in proto.pieces]
    assert (meta["tokenizer.ggml.bos_token_id"], meta["tokenizer.ggml.eos_token_id"]) == (1, 2)
    assert meta["tokenizer.ggml.unknown_token_id"] == 0
    assert meta["tokenizer.ggml.add_bos_token"] is True and meta["tokenizer.ggml.add_eos_token"] is False
    assert meta["tokenizer.ggml.add_space_prefix"] is True


def test_f32_logits_match_hf_with_llama_cpp_rope(exported, hf_logits):
    ids, ref = hf_logits
    meta, weights = read_gguf(exported["f32"])
    ours = forward(meta, weights, ids)
    assert ref.std() > 1.0  # logits are spread out, so the comparison means something
    np.testing.assert_allclose(ours, ref, atol=1e-4 * ref.std(), rtol=0)


@pytest.mark.parametrize("outtype,max_rel,min_argmax", [("f16", 0.01, 1.0), ("q8_0", 0.03, 0.9),
                                                        ("q4_0", 0.2, 0.75)])
def test_quantized_logits_stay_close(exported, hf_logits, outtype, max_rel, min_argmax):
    ids, ref = hf_logits
    meta, weights = read_gguf(exported[outtype])
    ours = forward(meta, weights, ids)
    rel = np.abs(ours - ref).mean() / np.abs(ref).mean()
    agree = (ours.argmax(-1) == ref.argmax(-1)).mean()
    assert rel < max_rel and agree >= min_argmax, (rel, agree)


def test_without_qk_permutation_logits_differ(sharp_model_dir, hf_logits, tmp_path, monkeypatch):
    """The forward check is sensitive to the permutation: skipping it gives different logits."""
    import zhllama.export.tensors as tensors_mod

    monkeypatch.setattr(tensors_mod, "permute_qk", lambda w, n: w)
    path = export_gguf(sharp_model_dir, tmp_path / "unpermuted.gguf", outtype="f32", progress=False)
    ids, ref = hf_logits
    meta, weights = read_gguf(path)
    assert np.abs(forward(meta, weights, ids) - ref).max() > 0.05 * ref.std()


def test_padded_vocab_and_added_pad_token(sharp_model_dir, hf_logits, tmp_path):
    """Rows past the SentencePiece pieces become [PADn] (unused); an added <pad> token is placed."""
    d = copy_model(sharp_model_dir, tmp_path / "padded")
    edit_weights(d, pad_vocab(1216))
    edit_config(d, vocab_size=1216, pad_token_id=1200)
    tok_cfg = json.loads((d / "tokenizer_config.json").read_text())
    tok_cfg["added_tokens_decoder"] = {"1200": {"content": "<pad>", "special": True}}
    tok_cfg["pad_token"] = "<pad>"
    (d / "tokenizer_config.json").write_text(json.dumps(tok_cfg))
    meta, weights = read_gguf(export_gguf(d, tmp_path / "p.gguf", outtype="f32", progress=False))
    tokens, types = meta["tokenizer.ggml.tokens"], meta["tokenizer.ggml.token_type"]
    assert len(tokens) == meta["llama.vocab_size"] == 1216
    assert tokens[1200] == "<pad>" and types[1200] == TokenType.CONTROL
    assert tokens[1201:] == [f"[PAD{i}]" for i in range(1201, 1216)]
    assert set(types[1201:]) == {TokenType.UNUSED}
    assert meta["tokenizer.ggml.padding_token_id"] == 1200
    ids, ref = hf_logits
    np.testing.assert_allclose(forward(meta, weights, ids)[:, :1200], ref, atol=1e-4 * ref.std(), rtol=0)


def test_sharded_checkpoint_gives_the_same_file_content(sharp_model_dir, exported, tmp_path):
    from transformers import LlamaForCausalLM

    d = tmp_path / "sharded"
    LlamaForCausalLM.from_pretrained(sharp_model_dir).save_pretrained(d, max_shard_size="200KB")
    assert (d / "model.safetensors.index.json").is_file()
    for f in ("tokenizer.model", "tokenizer_config.json"):
        (d / f).write_bytes((sharp_model_dir / f).read_bytes())
    _, a = read_gguf(export_gguf(d, tmp_path / "s.gguf", outtype="f32", progress=False))
    _, b = read_gguf(exported["f32"])
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_rope_scaling_and_chat_template_are_written(sharp_model_dir, tmp_path):
    d = copy_model(sharp_model_dir, tmp_path / "scaled")
    edit_config(d, rope_parameters={"rope_type": "linear", "factor": 4.0, "rope_theta": 500000.0})
    (d / "chat_template.jinja").write_text("{% for m in messages %}{{ m['content'] }}{% endfor %}")
    meta = _fields(export_gguf(d, tmp_path / "r.gguf", outtype="q8_0", name="zh-test", progress=False))
    assert meta["llama.rope.scaling.type"] == "linear" and meta["llama.rope.scaling.factor"] == 4.0
    assert meta["llama.rope.freq_base"] == 500000.0
    assert meta["tokenizer.chat_template"].startswith("{% for m in messages %}")
    assert meta["general.name"] == "zh-test"


def test_tensors_are_streamed_one_at_a_time(sharp_model_dir, tmp_path, monkeypatch):
    """Each tensor is converted right before it is written (no whole-model buffer)."""
    events = []
    real_convert = export_mod.convert
    monkeypatch.setattr(export_mod, "convert", lambda d, q: events.append("load") or real_convert(d, q))
    import gguf

    real_write = gguf.GGUFWriter.write_tensor_data
    monkeypatch.setattr(gguf.GGUFWriter, "write_tensor_data",
                        lambda self, t, *a: events.append("write") or real_write(self, t, *a))
    export_gguf(sharp_model_dir, tmp_path / "x.gguf", outtype="f16", progress=False)
    assert events == ["load", "write"] * 21


def test_pytorch_bin_checkpoint_gives_the_same_tensors(sharp_model_dir, exported, tmp_path):
    from safetensors.torch import load_file

    d = copy_model(sharp_model_dir, tmp_path / "bin")
    torch.save(load_file(str(d / "model.safetensors")), d / "pytorch_model.bin")
    (d / "model.safetensors").unlink()
    _, a = read_gguf(export_gguf(d, tmp_path / "b.gguf", outtype="f32", progress=False))
    _, b = read_gguf(exported["f32"])
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_cli_outtype_choices_are_the_exporters():
    import argparse

    from zhllama.cli import build_parser
    from zhllama.export import OUTTYPES

    def sub(parser, name):
        return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[name]

    gguf = sub(sub(build_parser(), "export"), "gguf")
    (outtype,) = [a for a in gguf._actions if a.dest == "outtype"]
    assert list(outtype.choices) == list(OUTTYPES)


def test_llama_cpp_applies_the_exported_rope_scaling(sharp_model_dir, tiny_tokenizer, tmp_path):
    """llama.cpp reads the rope-scaling keys and its logits match transformers' scaled model."""
    llama_cpp = pytest.importorskip("llama_cpp")
    from transformers import LlamaForCausalLM

    d = copy_model(sharp_model_dir, tmp_path / "scaled")
    edit_config(d, rope_parameters={"rope_type": "linear", "factor": 4.0, "rope_theta": 10000.0})
    ids = tiny_tokenizer(TEXT)["input_ids"]
    with torch.no_grad():
        ref = LlamaForCausalLM.from_pretrained(d, dtype=torch.float32).eval()(torch.tensor([ids])).logits[0].numpy()

    def llama_cpp_logits(model_dir, name):
        llm = llama_cpp.Llama(model_path=str(export_gguf(model_dir, tmp_path / name, outtype="f32", progress=False)),
                              n_ctx=64, logits_all=True, verbose=False, n_threads=1)
        llm.eval(ids)
        return np.array(llm.scores[: len(ids)])

    scaled, unscaled = llama_cpp_logits(d, "scaled.gguf"), llama_cpp_logits(sharp_model_dir, "plain.gguf")
    np.testing.assert_allclose(scaled, ref, atol=1e-3 * ref.std(), rtol=0)
    assert np.abs(unscaled - ref).max() > 0.05 * ref.std()  # without the scaling the logits differ

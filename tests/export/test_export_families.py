"""GGUF export of every model family, run in llama.cpp (via llama-cpp-python; skipped when it is not installed).

For a tiny sharpened model of each family (LLaMA with GQA and Llama-3.1's llama3 RoPE scaling, Qwen2
with q/k/v biases, Qwen3 with q/k norms), the f32 GGUF must give llama.cpp's logits within tolerance
of transformers' and the same greedy tokens, and carry the family's architecture and tensors.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from export_models import copy_model, edit_weights, sharpen

from zhllama.export import export_gguf
from zhllama.model.init import InitConfig, init_model

PROMPT_IDS = [5, 17, 300, 42, 9, 128, 77, 600, 31, 250, 12, 400]


@pytest.fixture(scope="module")
def llama3_rope_dir(tiny_tokenizer_dir, tmp_path_factory):
    """The llama family with Llama-3's shape on the SentencePiece test vocabulary: GQA, theta 500,000, llama3 RoPE."""
    d = tmp_path_factory.mktemp("families")
    out = init_model(InitConfig(family="llama", tokenizer=str(tiny_tokenizer_dir), out=str(d / "llama3"),
                                hidden_size=64, layers=2, heads=4, kv_heads=2, intermediate_size=128,
                                max_position=512, rope_theta=500000.0, llama3_rope_factor=8.0, seed=1))
    edit_weights(out, sharpen)
    return out


pytestmark = pytest.mark.usefixtures("llama_cpp_plain_buffers")  # tests/conftest.py says why


@pytest.fixture(scope="module")
def sharp_family_dirs(family_model_dirs, tmp_path_factory):
    """Each family's tiny model (byte-level BPE vocabularies shaped like Llama-3's and Qwen2's), sharpened;
    Qwen3 normalises queries and keys per head, so its q/k norm weights are scaled instead."""
    d = tmp_path_factory.mktemp("sharp")
    out = {}
    for family, src in family_model_dirs.items():
        out[family] = copy_model(src, d / family)
        edit_weights(out[family], lambda t: {k: (v * 4.0 if k.endswith(("q_norm.weight", "k_norm.weight")) else v)
                                             for k, v in sharpen(t).items()})
    return out


def _hf_logits(model_dir, ids):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].numpy(), model


def _check_in_llama_cpp(model_dir, tmp_path, arch: str):
    llama_cpp = pytest.importorskip("llama_cpp")
    from gguf import GGUFReader

    path = export_gguf(model_dir, tmp_path / "m-f32.gguf", outtype="f32", progress=False)
    reader = GGUFReader(str(path))
    field = reader.fields["general.architecture"]
    assert bytes(field.parts[field.data[0]]).decode() == arch
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=256, n_threads=2, logits_all=True, verbose=False)
    ids = PROMPT_IDS
    ref, model = _hf_logits(model_dir, ids)
    llm.reset()
    llm.eval(ids)
    ours = np.array(llm.scores[: len(ids)])
    assert np.abs(ours - ref).max() < 1e-2 * max(1.0, np.abs(ref).max()), np.abs(ours - ref).max()
    hf_greedy = model.generate(torch.tensor([ids]), max_new_tokens=12, do_sample=False)[0, len(ids):].tolist()
    llm.reset()
    cpp_greedy = []
    for token in llm.generate(ids, temp=0.0, top_k=1):
        cpp_greedy.append(token)
        if len(cpp_greedy) == len(hf_greedy):
            break
    assert cpp_greedy == hf_greedy
    return reader


@pytest.mark.parametrize("family", ["llama", "qwen2", "qwen3"])
def test_each_family_in_llama_cpp(family, sharp_family_dirs, tmp_path):
    """general.architecture is the family's, the family's tensors are there, and llama.cpp computes what
    transformers does; its tokenizer (gpt2, the family's pre-tokenizer) gives transformers' ids."""
    from transformers import AutoTokenizer

    model_dir = sharp_family_dirs[family]
    reader = _check_in_llama_cpp(model_dir, tmp_path, family)
    names = {t.name for t in reader.tensors}
    assert ("blk.0.attn_q.bias" in names) == (family == "qwen2")
    assert ("blk.0.attn_q_norm.weight" in names) == (family == "qwen3")
    assert ("rope_freqs.weight" in names) == (family == "llama")  # the llama model uses llama3 RoPE scaling
    llama_cpp = pytest.importorskip("llama_cpp")
    llm = llama_cpp.Llama(model_path=str(tmp_path / "m-f32.gguf"), n_ctx=256, n_threads=2, vocab_only=True, verbose=False)
    hf = AutoTokenizer.from_pretrained(model_dir)
    for text in ("北京是中国的首都。", "def main():\n    return 42  # 注释", "  two  spaces 1234"):
        assert llm.tokenize(text.encode("utf-8"), add_bos=hf.bos_token is not None, special=False) == \
            hf(text)["input_ids"], text


def test_llama_gqa_llama3_rope_in_llama_cpp(llama3_rope_dir, tmp_path):
    reader = _check_in_llama_cpp(llama3_rope_dir, tmp_path, "llama")
    names = {t.name for t in reader.tensors}
    assert "rope_freqs.weight" in names  # llama.cpp's form of Llama-3.1's RoPE scaling
    factors = next(t for t in reader.tensors if t.name == "rope_freqs.weight").data
    assert factors.min() == 1.0 and factors.max() == 8.0


def test_llama3_rope_factors_are_transformers(llama3_rope_dir):
    """The rope_freqs divisors are exactly transformers' llama3 inverse frequencies' ratio to the unscaled ones."""
    from transformers import AutoConfig
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    from zhllama.export.hparams import llama3_rope_factors, model_hparams, read_config

    hp = model_hparams(read_config(llama3_rope_dir), llama3_rope_dir)
    config = AutoConfig.from_pretrained(llama3_rope_dir)
    scaled, _ = ROPE_INIT_FUNCTIONS["llama3"](config, "cpu")
    base = 1.0 / (hp.rope_theta ** (np.arange(0, hp.head_dim, 2) / hp.head_dim))
    assert np.allclose(base / scaled.double().numpy(), llama3_rope_factors(hp), rtol=1e-5)

"""The exported file in llama.cpp itself (via llama-cpp-python; skipped when it is not installed).

llama.cpp's own tokenizer reads the GGUF vocabulary, so equal token ids prove the vocabulary
(pieces, scores, types, dummy prefix, byte fallback) was written as llama.cpp expects; equal logits
and greedy tokens prove the hyper-parameters and the Q/K permutation.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from export_models import copy_model, edit_weights, sharpen

from zhllama.export import export_gguf

llama_cpp = pytest.importorskip("llama_cpp")

TEXTS = ["The quick brown fox 跳过了懒狗。", "def main():\n    return 42  # 注释", "  two  spaces, emoji 🙂 and 1234"]


@pytest.fixture(scope="module")
def sharp_dir(tiny_model_dir, tmp_path_factory):
    d = copy_model(tiny_model_dir, tmp_path_factory.mktemp("llamacpp") / "model")
    edit_weights(d, sharpen)
    return d


pytestmark = pytest.mark.usefixtures("llama_cpp_plain_buffers")  # tests/conftest.py says why


def _llama(path):
    return llama_cpp.Llama(model_path=str(path), n_ctx=256, n_threads=2, logits_all=True, verbose=False)


@pytest.mark.parametrize("outtype,ftype", [("q8_0", "LLAMA_FTYPE_MOSTLY_Q8_0"), ("q4_0", "LLAMA_FTYPE_MOSTLY_Q4_0")])
def test_quantized_tensors_equal_llama_quantize(sharp_dir, tmp_path, outtype, ftype):
    """Quantizing our f32 file with llama.cpp's own llama-quantize gives the same bytes as our export."""
    import ctypes

    from gguf import GGUFReader

    ours = export_gguf(sharp_dir, tmp_path / f"ours-{outtype}.gguf", outtype=outtype, progress=False)
    f32 = export_gguf(sharp_dir, tmp_path / "f32.gguf", outtype="f32", progress=False)
    theirs = tmp_path / f"theirs-{outtype}.gguf"
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, ftype)
    assert llama_cpp.llama_model_quantize(str(f32).encode(), str(theirs).encode(), ctypes.byref(params)) == 0
    a = {t.name: t for t in GGUFReader(str(ours)).tensors}
    b = {t.name: t for t in GGUFReader(str(theirs)).tensors}
    assert a.keys() == b.keys()
    for name in a:  # output.weight: q6_K in llama-quantize's q4_0 where the row allows (here 64 < 256 does not)
        assert a[name].tensor_type == b[name].tensor_type, name
        assert np.array_equal(np.asarray(a[name].data).view(np.uint8), np.asarray(b[name].data).view(np.uint8)), name


@pytest.mark.parametrize("outtype", ["f32", "q8_0"])
def test_llama_cpp_tokens_logits_and_greedy_match_hf(sharp_dir, tiny_tokenizer, tmp_path, outtype):
    from transformers import LlamaForCausalLM

    llm = _llama(export_gguf(sharp_dir, tmp_path / f"m-{outtype}.gguf", outtype=outtype, progress=False))
    for text in TEXTS:
        assert llm.tokenize(text.encode("utf-8"), add_bos=True) == tiny_tokenizer(text)["input_ids"], text
    ids = tiny_tokenizer(TEXTS[0])["input_ids"]
    model = LlamaForCausalLM.from_pretrained(sharp_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        ref = model(torch.tensor([ids])).logits[0].numpy()
        hf_greedy = model.generate(torch.tensor([ids]), max_new_tokens=16, min_new_tokens=16,
                                   do_sample=False)[0, len(ids):].tolist()
    llm.eval(ids)
    ours = np.asarray(llm.scores[: len(ids)])
    tol = 1e-3 if outtype == "f32" else 0.05
    assert np.abs(ours - ref).mean() / np.abs(ref).mean() < tol
    llm.reset()
    greedy = []
    for tok in llm.generate(ids, top_k=1, temp=0.0, repeat_penalty=1.0):
        greedy.append(tok)
        if len(greedy) == 16:
            break
    if outtype == "f32":
        assert greedy == hf_greedy
    else:
        assert greedy[:4] == hf_greedy[:4]

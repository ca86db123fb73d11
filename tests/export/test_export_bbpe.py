"""GGUF export of byte-level BPE vocabularies (llama.cpp's ``gpt2`` tokenizer): plain and Chinese-extended.

Without llama.cpp: the keys written for the real Llama-3 and Qwen2 tokenizers equal those of the
vocab GGUFs llama.cpp ships (tokens, types, merges, pre-tokenizer name).  With llama-cpp-python (make
test-engines): llama.cpp's own tokenizer, reading our file, gives the Hugging Face ids on llama.cpp's
test vectors and a mixed Chinese/English/code set, for the bases and their Chinese extensions.
"""

from __future__ import annotations

import pytest
from tokenizers import Tokenizer

from zhllama.export.vocab import add_vocab_keys, build_vocab
from zhllama.tokenizer import bbpe
from zhllama.tokenizer.backend import merge_tokenizers


def write_vocab_gguf(folder, path, n_rows=None):
    """A vocab-only GGUF (LLaMA header, no tensors) of a tokenizer folder, as llama.cpp's ggml-vocab files are."""
    import gguf

    from zhllama.export.hparams import HParams, add_model_keys
    from zhllama.model.families import FAMILIES

    n = n_rows or len(bbpe.id_to_token(bbpe.read_tokenizer_json(folder)))
    vocab = build_vocab(folder, n, {})
    writer = gguf.GGUFWriter(str(path), "llama")
    add_model_keys(writer, HParams(FAMILIES["llama"], 64, 1, 4, 4, 128, 512, 1e-5, 16, 10000.0, None, False, None, None, None), n)
    add_vocab_keys(writer, vocab)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    writer.close()
    return path


def _field(reader, key):
    return reader.fields[key].contents()


@pytest.mark.parametrize("name,pre", [("llama3", "llama-bpe"), ("qwen2", "qwen2")])
def test_vocab_keys_equal_llama_cpp_own_file(shared_data, name, pre):
    from gguf import GGUFReader

    folder = shared_data / "tokenizers" / name
    ref = GGUFReader(str(next((folder / "llama.cpp").glob("*.gguf"))))
    ref_tokens = _field(ref, "tokenizer.ggml.tokens")
    vocab = build_vocab(folder, len(ref_tokens), {})
    n_real = len(bbpe.id_to_token(bbpe.read_tokenizer_json(folder)))
    assert vocab.model == "gpt2" and vocab.pre == pre == _field(ref, "tokenizer.ggml.pre")
    assert vocab.tokens == ref_tokens
    assert vocab.types[:n_real] == _field(ref, "tokenizer.ggml.token_type")[:n_real]
    assert vocab.merges == _field(ref, "tokenizer.ggml.merges")
    assert vocab.add_bos is (name == "llama3")
    if name == "llama3":
        assert (vocab.special_ids["bos"], vocab.special_ids["eos"]) == (128000, 128001)


def test_vocab_of_non_byte_level_json_is_refused(tmp_path, tiny_tokenizer_dir):
    from zhllama.errors import ZhllamaError

    (tmp_path / "tokenizer.json").write_bytes((tiny_tokenizer_dir / "tokenizer.json").read_bytes())
    with pytest.raises(ZhllamaError, match="no tokenizer.model"):
        build_vocab(tmp_path, 2000, {})


# --- llama.cpp itself ---------------------------------------------------------------------------

def _llama_vocab(path):
    llama_cpp = pytest.importorskip("llama_cpp")
    return llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)


def _agreement(folder, gguf_path, texts):
    """The texts where llama.cpp's ids differ from the Hugging Face ones (BOS as the tokenizer adds it;
    special tokens written in the text are special tokens, as ``tokenizers`` reads them)."""
    llm = _llama_vocab(gguf_path)
    hf = Tokenizer.from_file(str(folder / "tokenizer.json"))
    want = [e.ids for e in hf.encode_batch(texts)]
    add_bos = bbpe.adds_bos(bbpe.read_tokenizer_json(folder))
    got = [llm.tokenize(t.encode("utf-8"), add_bos=add_bos, special=True) for t in texts]
    return [t for t, g, w in zip(texts, got, want) if g != w]


MIXED = ["", " ", "  \n\n\t", "中文😀English", "C++ 和 Python 3.11", "GPT-4 是一个模型。", "价格：¥100，约$14。",
         "「引号」『书名』“双引号”", "ＡＢＣ，。！？３．１４", "ひらがな ｱｲｳ ䷀ 한국어 ภาษาไทย", "𠀀𠀁𪚥", "<|begin_of_text|> <s>",
         "http://example.com/路径?q=中文&x=1", " 中国 人民\n  共和国", "1234567890 一二三"]


@pytest.fixture(scope="module")
def agreement_texts(builtin_text):
    """Chinese, English, code and mixed strings: lines, halves of lines joined, this file's source."""
    zh, en = builtin_text["zh"][:300], builtin_text["en"][:300]
    joined = [a[: len(a) // 2] + " " + b[len(b) // 2:] for a, b in zip(zh, en)]
    code = [open(__file__, encoding="utf-8").read(), "for i in range(10):\n\tprint(i)  # 打印\n"]
    return MIXED + zh + en + joined + code


def test_llama_cpp_tokenizes_tiny_extended_as_hf(tmp_path, tiny_bbpe_dir, tiny_sp_model, agreement_texts):
    pytest.importorskip("llama_cpp")
    ext = tmp_path / "ext"
    merge_tokenizers(tiny_bbpe_dir, [tiny_sp_model], ext)
    for folder in (tiny_bbpe_dir, ext):
        assert _agreement(folder, write_vocab_gguf(folder, tmp_path / f"{folder.name}.gguf"), agreement_texts) == []


def test_stats_reads_a_gguf_vocabulary_like_its_folder(tmp_path, tiny_bbpe_dir, builtin_text):
    """``tokenizer stats --tokenizer FILE.gguf``: llama.cpp's tokenization of our vocab file measures as the folder."""
    from zhllama.tokenizer.stats import collect_stats

    pytest.importorskip("llama_cpp")
    (tmp_path / "zh.txt").write_text("\n".join(builtin_text["zh"][:200] + builtin_text["en"][:200]), encoding="utf-8")
    gguf_path = write_vocab_gguf(tiny_bbpe_dir, tmp_path / "v.gguf")
    folder, gguf_row = collect_stats([str(tiny_bbpe_dir), str(gguf_path)], [str(tmp_path / "zh.txt")], progress=False)
    assert gguf_row.tokens == folder.tokens and gguf_row.vocab_size == folder.vocab_size
    assert gguf_row.roundtrip_rate == folder.roundtrip_rate == 1.0


@pytest.fixture(scope="module", params=["llama3", "qwen2"])
def real_extension(request, shared_data, tmp_path_factory):
    """(base folder, base + chinese-sp-20k folder) for Llama-3 and Qwen2."""
    pytest.importorskip("llama_cpp")
    tok = shared_data / "tokenizers"
    ext = tmp_path_factory.mktemp("real_ext") / request.param
    merge_tokenizers(tok / request.param, [tok / "chinese-sp-20k" / "chinese_sp.model"], ext)
    return tok / request.param, ext


def test_llama_cpp_tokenizes_real_bases_and_extensions_as_hf(tmp_path, real_extension, agreement_texts):
    pytest.importorskip("llama_cpp")
    base, ext = real_extension
    vectors = next((base / "llama.cpp").glob("*.gguf.inp")).read_text(encoding="utf-8").split("\n__ggml_vocab_test__\n")[:-1]
    for k, folder in enumerate((base, ext)):
        path = write_vocab_gguf(folder, tmp_path / f"{k}.gguf")
        assert _agreement(folder, path, vectors + agreement_texts) == []


# --- a tiny model on an extended byte-level tokenizer: resize, export, llama.cpp -----------------

@pytest.fixture(scope="module")
def extended_model(tmp_path_factory, tiny_bbpe_dir, tiny_sp_model):
    """``model init`` on the byte-level base, merged with Chinese pieces, ``model resize``d."""
    from zhllama.model.init import InitConfig, init_model
    from zhllama.model.resize import ResizeConfig, resize_model

    d = tmp_path_factory.mktemp("bbpe_model")
    base = init_model(InitConfig(tokenizer=str(tiny_bbpe_dir), out=str(d / "base"), hidden_size=64, layers=2, heads=4,
                                 kv_heads=2, intermediate_size=128, max_position=512, seed=0))
    merge_tokenizers(tiny_bbpe_dir, [tiny_sp_model], d / "ext")
    report = resize_model(ResizeConfig(model=str(base), tokenizer=str(d / "ext"), out=str(d / "resized")))
    return base, d / "ext", d / "resized", report


def test_resize_initialises_new_rows_from_the_old_segmentation(extended_model):
    import torch
    from safetensors.torch import load_file

    base, ext, resized, report = extended_model
    n_base, n_ext = (len(bbpe.id_to_token(bbpe.read_tokenizer_json(f))) for f in (base, ext))
    assert report["new_rows"] == n_ext and report["initialised_from_subwords"] == n_ext - n_base
    old = load_file(str(base / "model.safetensors"))["model.embed_tokens.weight"]
    new = load_file(str(resized / "model.safetensors"))["model.embed_tokens.weight"]
    assert torch.equal(new[:n_base], old)
    base_tok = Tokenizer.from_file(str(base / "tokenizer.json"))
    word = bbpe.to_byte_level("中国")
    new_id = Tokenizer.from_file(str(ext / "tokenizer.json")).token_to_id(word)
    parts = [t.id for t in base_tok.model.tokenize(word)]
    assert new_id >= n_base and len(parts) > 1
    assert torch.allclose(new[new_id], old[parts].mean(0), atol=1e-6)


def _check_in_llama_cpp(model_dir, texts, tmp_path):
    """Export ``model_dir`` (sharpened copy) to f32 GGUF: llama.cpp's ids equal the HF tokenizer's on every
    text, and its greedy tokens equal transformers' on three prompts."""
    import torch
    from export_models import copy_model, edit_weights, sharpen
    from transformers import AutoTokenizer, LlamaForCausalLM

    from zhllama.export import export_gguf

    llama_cpp = pytest.importorskip("llama_cpp")
    sharp = copy_model(model_dir, tmp_path / "sharp")
    edit_weights(sharp, sharpen)  # peaked attention, spread logits: equal greedy tokens then prove something
    path = export_gguf(sharp, tmp_path / "m.gguf", outtype="f32", progress=False)
    assert _agreement(sharp, path, texts) == []
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=256, n_threads=2, verbose=False)
    tok = AutoTokenizer.from_pretrained(str(sharp))
    model = LlamaForCausalLM.from_pretrained(sharp, dtype=torch.float32).eval()
    for text in ["中国人民", "def main():\n    return 42  # 注释", "The quick brown fox 跳过了懒狗。"]:
        ids = tok(text)["input_ids"]
        with torch.no_grad():
            want = model.generate(torch.tensor([ids]), max_new_tokens=12, min_new_tokens=12, do_sample=False)[0, len(ids):]
        llm.reset()
        got = []
        for t in llm.generate(ids, top_k=1, temp=0.0, repeat_penalty=1.0):
            got.append(t)
            if len(got) == 12:
                break
        assert got == want.tolist(), text


def test_llama_cpp_runs_the_exported_model_as_hf(extended_model, agreement_texts, tmp_path):
    pytest.importorskip("llama_cpp")
    _check_in_llama_cpp(extended_model[2], agreement_texts, tmp_path)


def test_llama_cpp_runs_a_model_on_a_real_extension_as_hf(real_extension, agreement_texts, tmp_path):
    """A tiny LLaMA on Llama-3 / Qwen2 + chinese-sp-20k (``model init --tokenizer EXTENDED``)."""
    from zhllama.model.init import InitConfig, init_model

    pytest.importorskip("llama_cpp")
    model = init_model(InitConfig(tokenizer=str(real_extension[1]), out=str(tmp_path / "model"), hidden_size=32, layers=1,
                                  heads=2, kv_heads=1, intermediate_size=64, max_position=256, seed=0))
    _check_in_llama_cpp(model, agreement_texts, tmp_path)

"""The Hugging Face files give exactly SentencePiece's ids, slow vs fast, on tricky mixed text."""

from __future__ import annotations

import pytest

from zhllama.tokenizer import spm as S
from zhllama.tokenizer.hf import write_hf_tokenizer
from zhllama.tokenizer.load import load_tokenizer


def assert_same_ids(sp_model, folder, texts):
    sp = S.processor(sp_model)
    hf = load_tokenizer(folder)
    hf_ids = hf(texts, add_special_tokens=False, split_special_tokens=True)["input_ids"]  # as zhllama encodes text
    bad = [(t, a, b) for t, a, b in zip(texts, sp.encode(texts), hf_ids) if a != b]
    assert not bad, f"{len(bad)}/{len(texts)} differ, first: {bad[0][0]!r}"
    # with special tokens: BOS first, exactly as SentencePiece's add_bos
    assert hf("你好 world")["input_ids"] == [sp.bos_id()] + sp.encode("你好 world")


def assert_same_decode(sp_model, folder, texts):
    """Decoding agrees with SentencePiece (which gives back the text, except a literal ``▁``)."""
    sp = S.processor(sp_model)
    hf = load_tokenizer(folder)
    for t in texts:
        ids = sp.encode(t)
        assert hf.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False) == sp.decode(ids)
        assert sp.decode(ids) == t or "▁" in t


def test_mistral_hf_matches_sentencepiece(tmp_path, mistral_sp_model, mixed_texts):
    folder = write_hf_tokenizer(mistral_sp_model, tmp_path / "mistral")
    assert_same_ids(mistral_sp_model, folder, mixed_texts)
    assert (folder / "tokenizer.model").read_bytes() == mistral_sp_model.read_bytes()


def test_trained_model_hf_matches_sentencepiece(tiny_zh_model, mixed_texts):
    assert_same_ids(tiny_zh_model, tiny_zh_model.parent, mixed_texts)
    assert_same_decode(tiny_zh_model, tiny_zh_model.parent, mixed_texts[:200])


def test_special_tokens_in_text_stay_text(tmp_path, mistral_sp_model):
    """zhllama's text encoding reads "<s>" as characters; the folder's own setting reads it as BOS,
    which a chat template's ``{{ bos_token }}`` needs (tests/test_chat_template_jinja.py)."""
    from zhllama.templates import encode_plain_text

    hf = load_tokenizer(write_hf_tokenizer(mistral_sp_model, tmp_path / "m"))
    ids = encode_plain_text(hf, "<s> hi </s>")
    assert hf.bos_token_id not in ids and hf.eos_token_id not in ids
    assert hf("<s> hi </s>", add_special_tokens=False)["input_ids"][0] == hf.bos_token_id


@pytest.mark.parametrize("name", ["llama2", "chinese-llama2"])
def test_real_llama_tokenizers_exact(tmp_path, shared_data, mixed_texts, name):
    """Both are exact on everything: Llama-2 through tokenizer.json; Chinese-LLaMA-2 gives its 23K Chinese
    pieces equal scores, so zhllama loads it SentencePiece-backed (tests/tokenizer/test_exact*.py)."""
    model = shared_data / "tokenizers" / name / "tokenizer.model"
    folder = write_hf_tokenizer(model, tmp_path / name)
    assert_same_ids(model, folder, mixed_texts)
    assert_same_decode(model, folder, mixed_texts[:200])

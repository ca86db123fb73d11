"""Every model folder zhllama writes tokenizes the same in plain transformers (``AutoTokenizer``, what vLLM and
users' scripts load) as in zhllama: the same BOS and ids, SentencePiece's for SentencePiece models.

Three kinds of source tokenizer for ``zhllama model init --tokenizer``: one whose mergeable pieces tie on
score (Chinese-LLaMA-2's; no ``tokenizer.json`` can give its ids, so the folder's config selects
transformers' SentencePiece backend) and a bare ``tokenizer.model`` (zhllama writes its exact files).  Extended
byte-level BPE folders: tests/tokenizer/test_bbpe_merge.py.
"""

from __future__ import annotations

import shutil

from zhllama.model.init import InitConfig, init_model
from zhllama.tokenizer.load import load_tokenizer


def _model_folder(tokenizer, out):
    return init_model(InitConfig(tokenizer=str(tokenizer), out=str(out), hidden_size=32, layers=1, heads=2, kv_heads=1,
                                 intermediate_size=64, max_position=128, seed=0))


def _plain_and_zhllama(folder, texts):
    from transformers import AutoTokenizer

    plain = AutoTokenizer.from_pretrained(str(folder))
    return plain(texts)["input_ids"], load_tokenizer(folder)(texts)["input_ids"]


def _sentencepiece_ids(sp_model, texts):
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(sp_model))
    return [[sp.bos_id()] + x for x in sp.encode(texts)]


def test_tied_and_bare_sentencepiece_folders(tmp_path, tied_tokenizer_dir, tiny_sp_model, zh_lines, mixed_texts):
    texts = zh_lines[1500:2000] + [t for t in mixed_texts if "<" not in t]  # "<s>" in text: a token for transformers
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copyfile(tiny_sp_model, bare / "tokenizer.model")
    for src in (tied_tokenizer_dir, bare):
        folder = _model_folder(src, tmp_path / f"model-{src.name}")
        plain, ours = _plain_and_zhllama(folder, texts)
        assert plain == ours == _sentencepiece_ids(folder / "tokenizer.model", texts), src.name


def test_published_and_bare_llama_folders(tmp_path, shared_data, zh_lines):
    """500 held-out news lines: plain AutoTokenizer = SentencePiece with BOS (was 359/500 and no BOS)."""
    tok = shared_data / "tokenizers"
    lines = zh_lines[2500:3000]
    for src in (tok / "chinese-llama2", tok / "llama2"):
        folder = _model_folder(src, tmp_path / src.name)
        plain, ours = _plain_and_zhllama(folder, lines)
        assert sum(a == b for a, b in zip(plain, _sentencepiece_ids(folder / "tokenizer.model", lines))) == 500
        assert plain == ours

"""Tokenizers whose mergeable pieces tie on score encode with SentencePiece: its exact ids, everywhere."""

from __future__ import annotations

import pickle

import pytest
from transformers import PreTrainedTokenizerFast

from zhllama.tokenizer.load import load_tokenizer
from zhllama.templates import encode_plain_text
from zhllama.tokenizer import spm as S
from zhllama.tokenizer.exact import SentencePieceTokenizer, load_sentencepiece_tokenizer
from zhllama.tokenizer.spm import tied_pieces
from zhllama.tokenizer.hf import write_hf_tokenizer
from zhllama.tokenizer.merge import merge_protos


@pytest.fixture(scope="module")
def tied_texts(mixed_texts, zh_lines):
    return mixed_texts + list(zh_lines[2000:2400])


def sp_ids(folder, texts):
    return S.processor(folder / "tokenizer.model").encode(texts)


def test_ties_are_detected_only_where_they_change_ids(tied_tokenizer_dir, tiny_sp_model, mistral_sp_model, tiny_zh_model):
    assert tied_pieces(S.load_proto(tied_tokenizer_dir / "tokenizer.model")) > 500
    extended = merge_protos(S.load_proto(mistral_sp_model), [S.load_proto(tiny_zh_model)]).proto  # distinct scores
    for proto in (S.load_proto(tiny_sp_model), S.load_proto(mistral_sp_model), extended):  # Mistral: 14 "▁▁.." at -1e9
        assert tied_pieces(proto) == 0
    assert isinstance(load_tokenizer(tiny_sp_model), PreTrainedTokenizerFast)


def test_whitespace_run_ties_leave_the_fast_files_exact(mistral_sp_model, tmp_path):
    """Why ``▁▁``-only pieces (all at -1e9 in LLaMA/Mistral) are not counted as ties: any run of spaces
    tokenizes the same with the fast files as with SentencePiece."""
    texts = [ctx.replace("{}", run) for n in range(1, 130) for run in (" " * n, " " * n + "\t" + " " * (n // 3))
             for ctx in ("a{}b", "{}", "x{}", "{}y", "中{}文", "\n{}\t", "a{}\n{}b")]
    fast = load_tokenizer(write_hf_tokenizer(mistral_sp_model, tmp_path / "m"))
    assert isinstance(fast, PreTrainedTokenizerFast)
    ids = fast(texts, add_special_tokens=False, split_special_tokens=True)["input_ids"]
    assert ids == S.processor(mistral_sp_model).encode(texts)


def test_fast_files_disagree_with_sentencepiece_on_ties(tied_tokenizer_dir, tied_texts):
    """Why the exact path exists: the tokenizer.json of a tied model gives other ids on Chinese text."""
    fast = PreTrainedTokenizerFast(tokenizer_file=str(tied_tokenizer_dir / "tokenizer.json"))
    ids = fast(tied_texts, add_special_tokens=False, split_special_tokens=True)["input_ids"]
    differ = sum(a != b for a, b in zip(ids, sp_ids(tied_tokenizer_dir, tied_texts)))
    assert differ > 50


@pytest.mark.parametrize("how", ["folder", "tokenizer.model"])
def test_load_tokenizer_gives_sentencepiece_ids(tied_tokenizer_dir, tied_texts, how):
    tok = load_tokenizer(tied_tokenizer_dir if how == "folder" else tied_tokenizer_dir / "tokenizer.model")
    assert isinstance(tok, SentencePieceTokenizer)
    expected = sp_ids(tied_tokenizer_dir, tied_texts)
    assert tok(tied_texts, add_special_tokens=False, split_special_tokens=True)["input_ids"] == expected  # batch
    assert [encode_plain_text(tok, t) for t in tied_texts[::7]] == expected[::7]  # one text at a time
    sp = S.processor(tied_tokenizer_dir / "tokenizer.model")
    assert tok("你好 world")["input_ids"] == [sp.bos_id()] + sp.encode("你好 world")
    assert tok.pad_token == "<pad>" and tok.pad_token_id == sp.piece_to_id("<pad>") and len(tok) == sp.get_piece_size()
    for ids in expected[:300]:
        assert tok.decode(ids) == sp.decode(ids)


def test_exact_class_behaves_as_the_fast_files_where_both_are_exact(mistral_sp_model, mixed_texts, tmp_path):
    """On a model without ties the fast files are SentencePiece-exact, so every call zhllama makes
    (specials read in text or not, BOS, padding, decoding with and without specials) must agree."""
    folder = write_hf_tokenizer(mistral_sp_model, tmp_path / "m")
    fast = load_tokenizer(folder)
    exact = load_sentencepiece_tokenizer(folder / "tokenizer.model", {})
    texts = mixed_texts + ["<s>[INST] 你好 [/INST] hi</s><s>[INST] x", "</s> a <unk>b<s>"]
    for kwargs in ({}, {"add_special_tokens": False}, {"split_special_tokens": True},
                   {"add_special_tokens": False, "split_special_tokens": True}):
        assert exact(texts, **kwargs)["input_ids"] == fast(texts, **kwargs)["input_ids"], kwargs
        assert [exact(t, **kwargs)["input_ids"] for t in texts[:100]] == fast(texts[:100], **kwargs)["input_ids"], kwargs
    for tok in (exact, fast):
        tok.pad_token = tok.eos_token  # Mistral has no <pad>
    batch = exact(texts[:8], padding=True, return_tensors="pt")
    assert (batch["input_ids"] == fast(texts[:8], padding=True, return_tensors="pt")["input_ids"]).all()
    for ids in fast(texts)["input_ids"]:
        for skip in (False, True):
            assert exact.decode(ids, skip_special_tokens=skip) == fast.decode(ids, skip_special_tokens=skip)
    assert exact.convert_ids_to_tokens(list(range(300))) == fast.convert_ids_to_tokens(list(range(300)))


def test_save_pretrained_writes_a_folder_that_loads_exact_again(tied_tokenizer_dir, tied_texts, tmp_path):
    tok = load_tokenizer(tied_tokenizer_dir)
    tok.chat_template = "{{ bos_token }}{% for m in messages %}{{ m['content'] }}{% endfor %}"
    tok.save_pretrained(tmp_path / "saved")
    assert {p.name for p in (tmp_path / "saved").iterdir()} >= {"tokenizer.model", "tokenizer.json", "tokenizer_config.json"}
    again = load_tokenizer(tmp_path / "saved")
    assert isinstance(again, SentencePieceTokenizer) and again.chat_template == tok.chat_template
    assert again(tied_texts, add_special_tokens=False, split_special_tokens=True)["input_ids"] == sp_ids(tied_tokenizer_dir, tied_texts)


def test_pickles_for_datasets_workers(tied_tokenizer_dir, tied_texts):
    tok = pickle.loads(pickle.dumps(load_tokenizer(tied_tokenizer_dir)))
    assert tok(tied_texts, add_special_tokens=False, split_special_tokens=True)["input_ids"] == sp_ids(tied_tokenizer_dir, tied_texts)
    assert tok.decode(tok("充当前置")["input_ids"], skip_special_tokens=True) == "充当前置"


def test_added_tokens_of_a_folder_are_kept(tied_tokenizer_dir, tmp_path):
    """A folder whose tokenizer.json adds tokens after the pieces (saved by another tool) keeps their ids."""
    import json
    import shutil

    folder = tmp_path / "added"
    shutil.copytree(tied_tokenizer_dir, folder)
    data = json.loads((folder / "tokenizer.json").read_text())
    n = S.processor(folder / "tokenizer.model").get_piece_size()
    data["added_tokens"].append({"id": n, "content": "<|im_end|>", "single_word": False, "lstrip": False,
                                 "rstrip": False, "normalized": False, "special": True})
    (folder / "tokenizer.json").write_text(json.dumps(data))
    tok = load_tokenizer(folder)
    assert isinstance(tok, SentencePieceTokenizer) and len(tok) == n + 1
    assert tok("hi<|im_end|>", add_special_tokens=False)["input_ids"][-1] == n
    tok.save_pretrained(tmp_path / "saved")
    again = load_tokenizer(tmp_path / "saved")
    assert len(again) == n + 1 and again.convert_tokens_to_ids("<|im_end|>") == n

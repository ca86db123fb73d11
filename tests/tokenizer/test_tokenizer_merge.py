"""zhllama tokenizer merge: extend (default) and chinese-llama modes, on the protobuf."""

from __future__ import annotations

import json

import pytest

from zhllama.cli import main
from zhllama.tokenizer import spm as S
from zhllama.tokenizer.hf import write_hf_tokenizer
from zhllama.tokenizer.load import load_tokenizer
from zhllama.tokenizer.backend import merge_tokenizers
from zhllama.tokenizer.merge import has_chinese, is_chinese_piece


def same_ids_share(a_model, b_model, texts) -> float:
    a, b = S.processor(a_model), S.processor(b_model)
    return sum(x == y for x, y in zip(a.encode(texts), b.encode(texts))) / len(texts)


def hf_mismatches(folder, texts) -> list[str]:
    sp, hf = S.processor(folder / "tokenizer.model"), load_tokenizer(folder)
    hf_ids = hf(texts, add_special_tokens=False, split_special_tokens=True)["input_ids"]  # as zhllama encodes text
    return [t for t, a, b in zip(texts, sp.encode(texts), hf_ids) if a != b]


@pytest.fixture(scope="module")
def extended(tmp_path_factory, mistral_sp_model, tiny_zh_model):
    out = tmp_path_factory.mktemp("merge") / "ext"
    assert main(["tokenizer", "merge", "--base", str(mistral_sp_model), "--add", str(tiny_zh_model),
                 "--out", str(out), "--pad-token"]) == 0
    return out


def test_extend_adds_only_chinese_pieces_with_distinct_scores(extended, mistral_sp_model):
    base, merged = S.load_proto(mistral_sp_model), S.load_proto(extended / "tokenizer.model")
    n = len(base.pieces)
    assert [p.piece for p in merged.pieces[:n]] == [p.piece for p in base.pieces]
    assert [p.score for p in merged.pieces[:n]] == [p.score for p in base.pieces]
    new = merged.pieces[n + 1:]
    assert len(new) > 1000
    assert all(is_chinese_piece(p.piece) and p.type == S.NORMAL for p in new)
    scores = [p.score for p in new]
    assert len(set(scores)) == len(scores) and scores == sorted(scores, reverse=True)
    assert min(scores) > max(p.score for p in base.pieces)  # "above" placement
    report = json.loads((extended / "merge_report.json").read_text())
    assert report["total_pieces"] == len(merged.pieces) and report["mode"] == "extend"


def test_extend_keeps_non_chinese_text_identical(extended, mistral_sp_model, en_lines, mixed_texts):
    english = list(en_lines) + [t for t in mixed_texts if not has_chinese(t)]
    assert len(english) > 3000
    assert same_ids_share(mistral_sp_model, extended / "tokenizer.model", english) == 1.0


def test_extend_compresses_chinese(extended, mistral_sp_model, zh_lines):
    held_out = list(zh_lines[2000:2500])  # the tiny model was trained on the first 1,500 lines
    base, merged = S.processor(mistral_sp_model), S.processor(extended / "tokenizer.model")
    base_tokens = sum(map(len, base.encode(held_out)))
    merged_tokens = sum(map(len, merged.encode(held_out)))
    assert merged_tokens < 0.8 * base_tokens


def test_extend_hf_files_are_exact(extended, mixed_texts, zh_lines):
    texts = mixed_texts + list(zh_lines[2000:2300])
    assert hf_mismatches(extended, texts) == []


def test_pad_token_is_control_piece_after_base(extended, mistral_sp_model):
    n = len(S.load_proto(mistral_sp_model).pieces)
    merged = S.load_proto(extended / "tokenizer.model")
    assert merged.pieces[n].piece == "<pad>" and merged.pieces[n].type == S.CONTROL
    assert merged.trainer_spec.pad_id == n
    sp = S.processor(extended / "tokenizer.model")
    assert n not in sp.encode("<pad> text")  # a control piece never comes from text
    hf = load_tokenizer(extended)
    assert hf.pad_token == "<pad>" and hf.pad_token_id == n and len(hf) == len(merged.pieces)


def test_max_pieces_cap_keeps_hf_exact(tmp_path, mistral_sp_model, tiny_zh_model, mixed_texts, zh_lines):
    """A BPE model lists its single characters last; a cut must still bring each kept piece's
    characters along, or SentencePiece and the HF files disagree."""
    n = len(S.load_proto(mistral_sp_model).pieces)
    r = merge_tokenizers(mistral_sp_model, [tiny_zh_model], tmp_path / "cap", max_pieces=n + 500)
    merged = S.load_proto(tmp_path / "cap" / "tokenizer.model")
    assert len(merged.pieces) == n + 500 and r.truncated > 0
    vocab = {p.piece for p in merged.pieces}
    assert all(c in vocab for p in merged.pieces[n:] for c in p.piece.lstrip("▁"))
    assert hf_mismatches(tmp_path / "cap", mixed_texts + list(zh_lines[2000:2200])) == []


def test_below_placement_is_exact_too(tmp_path, mistral_sp_model, tiny_zh_model, mixed_texts):
    merge_tokenizers(mistral_sp_model, [tiny_zh_model], tmp_path / "below", placement="below")
    merged = S.load_proto(tmp_path / "below" / "tokenizer.model")
    n = len(S.load_proto(mistral_sp_model).pieces)
    base_normal = [p.score for p in merged.pieces[:n] if p.type == S.NORMAL and p.score > -1e6]
    assert max(p.score for p in merged.pieces[n:]) < min(base_normal)
    assert hf_mismatches(tmp_path / "below", mixed_texts) == []


def test_chinese_llama_mode_appends_every_missing_piece_score_0(tmp_path, mistral_sp_model, tiny_zh_model):
    base, add = S.load_proto(mistral_sp_model), S.load_proto(tiny_zh_model)
    have = {p.piece for p in base.pieces}
    expected = [p.piece for p in add.pieces if p.piece not in have]
    merge_tokenizers(mistral_sp_model, [tiny_zh_model], tmp_path / "cl", mode="chinese-llama")
    merged = S.load_proto(tmp_path / "cl" / "tokenizer.model")
    assert [p.piece for p in merged.pieces] == [p.piece for p in base.pieces] + expected
    assert all(p.score == 0 and p.type == S.NORMAL for p in merged.pieces[len(base.pieces):])
    assert any(not is_chinese_piece(p) for p in expected)  # unlike extend, it takes everything
    assert load_tokenizer(tmp_path / "cl")("中文")["input_ids"][0] == 1


def test_base_can_be_a_hf_folder(tmp_path, mistral_sp_model, tiny_zh_model, extended):
    folder = write_hf_tokenizer(mistral_sp_model, tmp_path / "base")
    merge_tokenizers(folder, [tiny_zh_model.parent], tmp_path / "from_folder", pad_token=True)
    a = (tmp_path / "from_folder" / "tokenizer.model").read_bytes()
    assert a == (extended / "tokenizer.model").read_bytes()


def test_several_added_models_are_deduplicated(tmp_path, mistral_sp_model, tiny_zh_model):
    r = merge_tokenizers(mistral_sp_model, [tiny_zh_model, tiny_zh_model], tmp_path / "twice")
    r1 = merge_tokenizers(mistral_sp_model, [tiny_zh_model], tmp_path / "once")
    assert r.added == r1.added


def test_chinese_llama_reproduction_49953(tmp_path, shared_data):
    tok = shared_data / "tokenizers"
    llama, zh = tok / "llama2" / "tokenizer.model", tok / "chinese-sp-20k" / "chinese_sp.model"
    assert main(["tokenizer", "merge", "--mode", "chinese-llama", "--base", str(llama), "--add", str(zh),
                 "--out", str(tmp_path / "cl")]) == 0
    merged = S.load_proto(tmp_path / "cl" / "tokenizer.model")
    base, add = S.load_proto(llama), S.load_proto(zh)
    have = {p.piece for p in base.pieces}
    assert len(merged.pieces) == 49953
    assert [p.piece for p in merged.pieces] == [p.piece for p in base.pieces] + [p.piece for p in add.pieces if p.piece not in have]


def test_extend_on_real_llama2(tmp_path, shared_data, mixed_texts, en_lines):
    tok = shared_data / "tokenizers"
    llama = tok / "llama2" / "tokenizer.model"
    merge_tokenizers(llama, [tok / "chinese-sp-20k" / "chinese_sp.model"], tmp_path / "ext", pad_token=True)
    assert hf_mismatches(tmp_path / "ext", mixed_texts) == []
    english = list(en_lines) + [t for t in mixed_texts if not has_chinese(t)]
    assert same_ids_share(llama, tmp_path / "ext" / "tokenizer.model", english) == 1.0


def test_merge_errors_are_one_line_and_write_nothing(tmp_path, capsys, mistral_sp_model, tiny_zh_model):
    junk = tmp_path / "junk.model"
    junk.write_text("this is not a protobuf, just text\n" * 3)
    existing = tmp_path / "exists"
    existing.mkdir()
    (existing / "x").write_text("keep")
    hf_folder = tmp_path / "hf_no_model"
    hf_folder.mkdir()
    (hf_folder / "tokenizer.json").write_text("{}")
    out = tmp_path / "out"
    cases = [
        (["--base", tmp_path / "missing.model", "--add", tiny_zh_model, "--out", out], "not found"),
        (["--base", junk, "--add", tiny_zh_model, "--out", out], "not a SentencePiece model"),
        (["--base", mistral_sp_model, "--add", junk, "--out", out], "junk.model"),
        (["--base", hf_folder, "--add", tiny_zh_model, "--out", out], "has no tokenizer model"),
        (["--base", mistral_sp_model, "--add", tiny_zh_model, "--out", existing], "--overwrite"),
        (["--base", mistral_sp_model, "--add", tiny_zh_model, "--out", out, "--max-pieces", 1000], "--max-pieces 1000"),
    ]
    for args, words in cases:
        assert main(["tokenizer", "merge", *map(str, args)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("zhllama: error:") and words in err and len(err.strip().splitlines()) == 1, err
        assert not out.exists() and (existing / "x").read_text() == "keep"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no half-written temp folders


def test_extend_needs_a_bpe_base(tmp_path, capsys, shared_data, tiny_zh_model):
    unigram = shared_data / "tokenizers" / "chinese-sp-20k" / "chinese_sp.model"
    assert main(["tokenizer", "merge", "--base", str(unigram), "--add", str(tiny_zh_model), "--out", str(tmp_path / "o")]) == 2
    assert "--mode chinese-llama" in capsys.readouterr().err and not (tmp_path / "o").exists()

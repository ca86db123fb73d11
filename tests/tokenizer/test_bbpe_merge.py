"""`zhllama tokenizer merge` on a byte-level BPE base, and `tokenizer train --type byte-bpe`.

In CI on a small Llama-3-style base built in-process (tests/bbpe_fixtures.py: English only, so every
Chinese character is bytes there and the extension must build byte chains); with ../shared on the real
Llama-3 and Qwen2 tokenizers and Chinese-LLaMA's 20K SentencePiece model.
"""

from __future__ import annotations

import json
from functools import lru_cache

import pytest
from tokenizers import Tokenizer

from zhllama.cli import main
from zhllama.tokenizer import bbpe
from zhllama.tokenizer.bbpe_merge import bpe_segment, implies_chinese
from zhllama.tokenizer.backend import merge_tokenizers
from zhllama.tokenizer.merge import HAN_CHAR, has_chinese


@lru_cache(maxsize=8)
def _tokenizer(path: str) -> Tokenizer:
    return Tokenizer.from_file(path)


def _ids(folder, texts):
    tok = _tokenizer(str(folder / "tokenizer.json"))
    return [e.ids for e in tok.encode_batch(texts, add_special_tokens=False)]


def _zh_per_token(folder, docs) -> float:
    return sum(len(HAN_CHAR.findall(d)) for d in docs) / sum(len(x) for x in _ids(folder, docs))


@pytest.fixture(scope="module")
def zh_bbpe_dir(tmp_path_factory, zh_lines):
    """A Chinese byte-level BPE trained with the CLI on the base's pre-tokenizer (first 2,000 People's Daily lines)."""
    d = tmp_path_factory.mktemp("zh_bbpe")
    (d / "zh.txt").write_text("\n".join(zh_lines[:2000]), encoding="utf-8")
    return d


@pytest.fixture(scope="module")
def extended(tmp_path_factory, tiny_bbpe_dir, zh_bbpe_dir):
    add = zh_bbpe_dir / "tok"
    assert main(["tokenizer", "train", "--type", "byte-bpe", "--base", str(tiny_bbpe_dir), "--corpus",
                 str(zh_bbpe_dir / "zh.txt"), "--vocab-size", "3000", "--out", str(add)]) == 0
    out = tmp_path_factory.mktemp("bbpe_ext") / "ext"
    assert main(["tokenizer", "merge", "--base", str(tiny_bbpe_dir), "--add", str(add), "--out", str(out)]) == 0
    return out


def test_implies_chinese_only_for_chinese_bytes():
    assert implies_chinese("中".encode())  # a whole character
    assert implies_chinese("中".encode()[:2])  # E4 B8: only CJK ideographs start so
    assert not implies_chinese("中".encode()[1:])  # continuation bytes: Thai, kana ... end the same way
    assert not implies_chinese("䷀".encode()[:2])  # E4 B7: Yijing hexagrams, not Chinese characters
    assert not implies_chinese("ｱ".encode()[:2])  # EF BD: fullwidth forms share it with halfwidth katakana
    assert implies_chinese(b"x" + "，".encode())
    assert not implies_chinese("abc é".encode())


def test_bpe_segment_applies_lowest_rank_leftmost():
    ranks = {("a", "b"): 0, ("b", "c"): 1, ("ab", "c"): 2}
    assert bpe_segment("abc", ranks) == ["abc"]
    assert bpe_segment("bcab", ranks) == ["bc", "ab"]
    assert bpe_segment("abab", ranks, {("ab", "ab"): 5}) == ["abab"]


def test_extension_keeps_every_base_id_and_setting(extended, tiny_bbpe_dir):
    base, ext = (json.loads((d / "tokenizer.json").read_text(encoding="utf-8")) for d in (tiny_bbpe_dir, extended))
    base_ids = bbpe.id_to_token(base)
    n_base = len(base_ids)
    vocab = ext["model"]["vocab"]
    assert all(vocab[t] == i for i, t in base_ids.items())
    new_ids = sorted(i for t, i in vocab.items() if t not in set(base_ids.values()))
    assert new_ids == list(range(n_base, n_base + len(new_ids))) and len(new_ids) > 300
    assert bbpe.merges_of(ext)[: len(bbpe.merges_of(base))] == bbpe.merges_of(base)  # new merges ranked after
    for key in ("normalizer", "pre_tokenizer", "post_processor", "decoder", "added_tokens"):
        assert ext[key] == base[key], key
    assert ext["model"]["ignore_merges"] is True
    assert (extended / "tokenizer_config.json").read_text() == (tiny_bbpe_dir / "tokenizer_config.json").read_text()
    report = json.loads((extended / "merge_report.json").read_text())
    assert report["new_ids_from"] == n_base and report["added_pieces"] == len(new_ids)
    assert report["unreachable"] == [] and report["added_character_fragments"] > 0  # chains for byte-only characters


def test_every_new_token_is_formed_by_merges(extended, tiny_bbpe_dir):
    """Encoding a new word with ignore_merges off (merges alone) gives that one token."""
    data = json.loads((extended / "tokenizer.json").read_text(encoding="utf-8"))
    data["model"]["ignore_merges"] = False
    tok = Tokenizer.from_str(json.dumps(data))
    base = set(json.loads((tiny_bbpe_dir / "tokenizer.json").read_text(encoding="utf-8"))["model"]["vocab"])
    words = [(t, bbpe.token_text(t)) for t in data["model"]["vocab"] if t not in base]
    words = [(t, w) for t, w in words if w is not None]
    assert len(words) > 300
    for (t, w), e in zip(words, tok.encode_batch([w for _, w in words], add_special_tokens=False)):
        assert e.ids == [data["model"]["vocab"][t]], w


def test_text_without_chinese_keeps_its_ids(extended, tiny_bbpe_dir, en_lines, mixed_texts):
    free = list(en_lines) + [t for t in mixed_texts if not has_chinese(t)]
    free += ["ひらがなとカタカナ", "ｱｲｳ halfwidth", "䷀䷁ hexagrams", "ภาษาไทย", "한국어", "🙂🇨🇳", "\u3041\u30a2"]
    assert _ids(extended, free) == _ids(tiny_bbpe_dir, free)


def test_chinese_compresses_and_everything_round_trips(extended, tiny_bbpe_dir, zh_lines, mixed_texts):
    held_out = zh_lines[2000:3000]
    assert _zh_per_token(extended, held_out) > 2 * _zh_per_token(tiny_bbpe_dir, held_out)
    tok = Tokenizer.from_file(str(extended / "tokenizer.json"))
    for text, ids in zip(held_out + mixed_texts, _ids(extended, held_out + mixed_texts)):
        assert tok.decode(ids, skip_special_tokens=False) == text


def test_transformers_reads_the_folder_as_tokenizers_does(extended, mixed_texts):
    from transformers import AutoTokenizer

    auto = AutoTokenizer.from_pretrained(str(extended))
    tok = Tokenizer.from_file(str(extended / "tokenizer.json"))
    assert [e.ids for e in tok.encode_batch(mixed_texts)] == auto(mixed_texts)["input_ids"]
    assert auto("中国")["input_ids"][0] == auto.bos_token_id


def test_sentencepiece_add_and_max_pieces(tmp_path, tiny_bbpe_dir, tiny_sp_model):
    """A SentencePiece model's Chinese pieces become byte-level tokens; --max-pieces caps the vocabulary."""
    s = merge_tokenizers(tiny_bbpe_dir, [tiny_sp_model], tmp_path / "a", max_pieces=1000, pad_token=True).summary()
    assert s["total_pieces"] <= 1000 and s["truncated"] > 0 and s["skipped_not_chinese"] > 0
    data = json.loads((tmp_path / "a" / "tokenizer.json").read_text(encoding="utf-8"))
    assert data["model"]["vocab"]["<pad>"] == s["pad_id"] == 858
    assert json.loads((tmp_path / "a" / "tokenizer_config.json").read_text())["pad_token"] == "<pad>"


def test_bad_inputs_are_one_line_and_write_nothing(tmp_path, capsys, tiny_bbpe_dir, tiny_tokenizer_dir, zh_lines):
    from tokenizers import models

    other_alphabet = tmp_path / "sp_style"
    other_alphabet.mkdir()
    (other_alphabet / "tokenizer.json").write_bytes((tiny_tokenizer_dir / "tokenizer.json").read_bytes())
    kinds = {}
    for name, model in {"wordpiece": models.WordPiece({"[UNK]": 0, "a": 1}, unk_token="[UNK]"),
                        "unigram": models.Unigram([("a", -1.0), ("b", -2.0)], 0, False)}.items():
        kinds[name] = tmp_path / name
        kinds[name].mkdir()
        Tokenizer(model).save(str(kinds[name] / "tokenizer.json"))
    truncated = tmp_path / "truncated"
    truncated.mkdir()
    text = (tiny_bbpe_dir / "tokenizer.json").read_text(encoding="utf-8")
    (truncated / "tokenizer.json").write_text(text[: len(text) // 2], encoding="utf-8")
    out = tmp_path / "out"
    cases = [
        (["--base", tiny_bbpe_dir, "--add", other_alphabet], "BPE without a ByteLevel pre-tokenizer"),
        (["--base", kinds["wordpiece"], "--add", tiny_bbpe_dir], "WordPiece model"),
        (["--base", kinds["unigram"], "--add", tiny_bbpe_dir], "Unigram model"),
        (["--base", truncated, "--add", tiny_bbpe_dir], "not valid JSON"),
        (["--base", tiny_bbpe_dir, "--add", truncated], "not valid JSON"),
        (["--base", tiny_bbpe_dir, "--add", tiny_bbpe_dir, "--max-pieces", 500], "--max-pieces 500"),
        (["--base", tiny_bbpe_dir, "--add", tiny_bbpe_dir, "--mode", "chinese-llama"], "SentencePiece bases only"),
        (["--base", tiny_bbpe_dir, "--add", tiny_bbpe_dir, "--placement", "below"], "SentencePiece bases only"),
    ]
    for args, words in cases:
        assert main(["tokenizer", "merge", *map(str, args), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("zhllama: error:") and words in err and len(err.strip().splitlines()) == 1, err
        assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


# --- the real tokenizers (../shared) ----------------------------------------------------------

def llama_cpp_vectors(folder):
    """llama.cpp's test texts and ids for a tokenizer (``.inp``/``.out`` beside its vocab GGUF)."""
    gguf = next((folder / "llama.cpp").glob("*.gguf"))
    texts = gguf.with_suffix(".gguf.inp").read_text(encoding="utf-8").split("\n__ggml_vocab_test__\n")[:-1]
    ids = gguf.with_suffix(".gguf.out").read_text(encoding="utf-8").split("\n")[:-1]
    return texts, [[int(x) for x in line.split()] for line in ids]


@pytest.fixture(scope="module", params=["llama3", "qwen2"])
def real_extended(request, shared_data, tmp_path_factory):
    tok = shared_data / "tokenizers"
    out = tmp_path_factory.mktemp("real_ext") / request.param
    merge_tokenizers(tok / request.param, [tok / "chinese-sp-20k" / "chinese_sp.model"], out)
    return tok / request.param, out


def test_real_bases_extended_with_chinese_sp_20k(real_extended, zh_lines, en_lines, mixed_texts):
    base, ext = real_extended
    news = zh_lines[:3000]  # People's Daily: never seen by chinese-sp-20k's or the bases' training here
    assert _zh_per_token(ext, news) >= 1.30 > _zh_per_token(base, news) - (0.05 if base.name == "qwen2" else 0.2)
    texts, want = llama_cpp_vectors(base)
    assert len(texts) == len(want) == 46
    assert _ids(base, texts) == want  # the vectors are read right
    free = [(t, w) for t, w in zip(texts, want) if not has_chinese(t)]
    assert len(free) == 44 and _ids(ext, [t for t, _ in free]) == [w for _, w in free]
    english = list(en_lines) + [t for t in mixed_texts if not has_chinese(t)]
    assert _ids(ext, english) == _ids(base, english)
    tok = _tokenizer(str(ext / "tokenizer.json"))
    everything = texts + news + mixed_texts
    assert all(tok.decode(i, skip_special_tokens=False) == t for t, i in zip(everything, _ids(ext, everything)))
    assert json.loads((ext / "merge_report.json").read_text())["unreachable"] == []


def test_real_extension_in_plain_transformers(real_extended, zh_lines, mixed_texts, tmp_path):
    """A model folder's copy of the extended tokenizer: plain AutoTokenizer = zhllama = tokenizers, BOS as the base."""
    from transformers import AutoTokenizer

    from zhllama.tokenizer.hf import copy_tokenizer_files
    from zhllama.tokenizer.load import load_tokenizer

    base, ext = real_extended
    copy_tokenizer_files(ext, tmp_path)  # what every stage that writes a model folder does
    texts = zh_lines[2500:3000] + mixed_texts
    plain = AutoTokenizer.from_pretrained(str(tmp_path))(texts)["input_ids"]
    assert plain == load_tokenizer(tmp_path)(texts)["input_ids"]
    assert plain == [e.ids for e in _tokenizer(str(ext / "tokenizer.json")).encode_batch(texts)]
    assert (plain[0][0] == 128000) is (base.name == "llama3")  # Llama-3 adds BOS, Qwen2 none


def test_train_byte_bpe_bad_inputs(tmp_path, capsys):
    from tokenizers import models

    wordpiece = tmp_path / "wp"
    wordpiece.mkdir()
    Tokenizer(models.WordPiece({"[UNK]": 0}, unk_token="[UNK]")).save(str(wordpiece / "tokenizer.json"))
    corpus, empty = tmp_path / "zh.txt", tmp_path / "empty.txt"
    corpus.write_text("中文文本\n", encoding="utf-8")
    empty.write_text("\n\n", encoding="utf-8")
    out = tmp_path / "out"
    for args, words in [(["--base", wordpiece, "--corpus", corpus], "WordPiece model"),
                        (["--corpus", empty], "no text"), (["--corpus", tmp_path / "missing.txt"], "missing.txt")]:
        assert main(["tokenizer", "train", "--type", "byte-bpe", *map(str, args), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("zhllama: error:") and words in err and len(err.strip().splitlines()) == 1, err
        assert not out.exists()

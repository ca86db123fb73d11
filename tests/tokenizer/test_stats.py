"""zhllama tokenizer stats: the measured numbers, JSON, the plot, and errors."""

from __future__ import annotations

import json

from zhllama.cli import main
from zhllama.tokenizer import spm as S
from zhllama.tokenizer.hf import write_hf_tokenizer
from zhllama.tokenizer.stats import collect_stats


def test_stats_numbers_match_a_direct_count(tmp_path, mistral_sp_model):
    text = tmp_path / "t.txt"
    docs = ["中文分词 test", "abc\tdef  ghi", "😀 ok"]
    text.write_text("\n".join(docs), encoding="utf-8")
    (row,) = collect_stats([str(mistral_sp_model)], [str(text)], progress=False)
    sp = S.processor(mistral_sp_model)
    tokens = sum(len(sp.encode(d)) for d in docs)
    assert row.vocab_size == 32000 and row.documents == 3 and row.tokens == tokens
    assert row.chinese_characters == 4
    assert abs(row.chinese_chars_per_token - 4 / tokens) < 1e-12
    assert abs(row.bytes_per_token - sum(len(d.encode()) for d in docs) / tokens) < 1e-12
    assert abs(row.tokens_per_char - tokens / sum(map(len, docs))) < 1e-12
    assert row.unk_rate == 0 and row.roundtrip_rate == 1.0


def test_unknown_tokens_and_failed_round_trips_are_counted(tmp_path, shared_data):
    """The Chinese-LLaMA 20K model has no byte fallback: an emoji is <unk> and cannot come back."""
    text = tmp_path / "t.txt"
    text.write_text("中文😀\n中文\n", encoding="utf-8")
    (row,) = collect_stats([str(shared_data / "tokenizers/chinese-sp-20k/chinese_sp.model")], [str(text)], progress=False)
    assert row.unk_rate > 0 and row.roundtrip_rate == 0.5


def test_merged_tokenizer_compresses_better_json_and_plot(tmp_path, capsys, mistral_sp_model, tiny_zh_model, zh_lines):
    merged = tmp_path / "merged"
    assert main(["tokenizer", "merge", "--base", str(mistral_sp_model), "--add", str(tiny_zh_model), "--out", str(merged)]) == 0
    hf_only = write_hf_tokenizer(mistral_sp_model, tmp_path / "hf_only")
    (hf_only / "tokenizer.model").unlink()  # forces the Hugging Face path
    text = tmp_path / "zh.jsonl"
    text.write_text("\n".join(json.dumps({"text": t}, ensure_ascii=False) for t in zh_lines[2000:2100]), encoding="utf-8")
    capsys.readouterr()
    png = tmp_path / "plot.png"
    code = main(["tokenizer", "stats", "--tokenizer", str(mistral_sp_model), "--tokenizer", str(merged),
                 "--tokenizer", str(hf_only), "--text", str(text), "--json", "--plot", str(png)])
    assert code == 0
    rows = json.loads(capsys.readouterr().out)
    base, ours, hf = rows
    assert ours["chinese_chars_per_token"] > 1.25 * base["chinese_chars_per_token"]
    assert hf["tokens"] == base["tokens"] and hf["roundtrip_rate"] == 1.0  # HF files == SentencePiece
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_table_output(tmp_path, capsys, mistral_sp_model):
    text = tmp_path / "t.txt"
    text.write_text("你好，世界\n", encoding="utf-8")
    assert main(["tokenizer", "stats", "--tokenizer", str(mistral_sp_model), "--text", str(text)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "zh chars/tok" in out[0] and "t.txt" in out[2] and "32,000" in out[2]


def test_stats_errors(tmp_path, capsys, mistral_sp_model):
    text = tmp_path / "t.txt"
    text.write_text("hello\n", encoding="utf-8")
    junk = tmp_path / "junk.model"
    junk.write_bytes(b"\x00not a model at all" * 10)
    empty = tmp_path / "empty.txt"
    empty.write_text("\n", encoding="utf-8")
    cases = [(["--tokenizer", str(junk), "--text", str(text)], "not a SentencePiece model"),
             (["--tokenizer", str(tmp_path / "none"), "--text", str(text)], "not found"),
             (["--tokenizer", str(mistral_sp_model), "--text", str(empty)], "no text"),
             (["--tokenizer", str(mistral_sp_model), "--text", str(text), "--plot", str(tmp_path / "p.jpg")], ".png")]
    for args, words in cases:
        assert main(["tokenizer", "stats", *args]) == 2
        err = capsys.readouterr().err
        assert err.startswith("zhllama: error:") and words in err and len(err.strip().splitlines()) == 1, err

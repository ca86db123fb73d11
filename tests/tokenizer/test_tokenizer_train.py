"""zhllama tokenizer train: LLaMA-compatible settings, every corpus format, and its errors."""

from __future__ import annotations

import gzip
import json

from zhllama.cli import main
from zhllama.tokenizer import spm as S
from zhllama.tokenizer.load import load_tokenizer


def run(args, capsys):
    code = main(["tokenizer", "train", *map(str, args)])
    return code, capsys.readouterr().err


def write_corpora(d, zh_lines):
    """The same kind of text as .txt.gz, .jsonl and Alpaca .json."""
    with gzip.open(d / "a.txt.gz", "wt", encoding="utf-8") as f:
        f.write("\n".join(zh_lines[:300]))
    (d / "b.jsonl").write_text("\n".join(json.dumps({"text": t}, ensure_ascii=False) for t in zh_lines[300:500]),
                               encoding="utf-8")
    recs = [{"instruction": a, "input": "", "output": b} for a, b in zip(zh_lines[500:700:2], zh_lines[501:700:2])]
    (d / "c.json").write_text(json.dumps(recs, ensure_ascii=False), encoding="utf-8")
    return [d / "a.txt.gz", d / "b.jsonl", d / "c.json"]


def test_trained_model_has_llama_settings(tiny_zh_model):
    proto = S.load_proto(tiny_zh_model)
    ts, ns = proto.trainer_spec, proto.normalizer_spec
    assert len(proto.pieces) == 4000 and ts.model_type == S.BPE
    assert ts.byte_fallback and ts.split_digits and not ns.remove_extra_whitespaces and ns.add_dummy_prefix
    assert ns.name == "identity"
    assert [p.piece for p in proto.pieces[:3]] == ["<unk>", "<s>", "</s>"]
    sp = S.processor(tiny_zh_model)
    assert sp.decode(sp.encode("  缩进\n\tＡ１😀")) == "  缩进\n\tＡ１😀"  # byte fallback, no NFKC
    assert (tiny_zh_model.parent / "tokenizer.vocab").is_file()
    assert load_tokenizer(tiny_zh_model.parent)("中国")["input_ids"] == [1] + sp.encode("中国")


def test_train_reads_every_corpus_format(tmp_path, capsys, zh_lines):
    files = write_corpora(tmp_path, zh_lines)
    out = tmp_path / "tok"
    code, err = run(["--corpus", *files, "--vocab-size", 3000, "--model-type", "unigram", "--out", out,
                     "--character-coverage", 0.99, "--input-sentence-size", 100000], capsys)
    assert code == 0, err
    assert "on 700 lines" in err  # 300 txt + 200 jsonl + 100 Alpaca records x 2 fields
    proto = S.load_proto(out / "tokenizer.model")
    assert proto.trainer_spec.model_type == S.UNIGRAM and len(proto.pieces) == 3000
    assert proto.trainer_spec.input_sentence_size == 100000 and abs(proto.trainer_spec.character_coverage - 0.99) < 1e-6


def test_existing_output_refused_unless_overwrite(tmp_path, capsys, tiny_zh_corpus):
    out = tmp_path / "tok"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    args = ["--corpus", tiny_zh_corpus, "--vocab-size", 4000, "--out", out]
    code, err = run(args, capsys)
    assert code == 2 and "already exists" in err and "--overwrite" in err
    assert (out / "keep.txt").read_text() == "mine"
    code, err = run([*args, "--overwrite"], capsys)
    assert code == 0 and (out / "tokenizer.model").is_file() and not (out / "keep.txt").exists()


def assert_one_line_error(code, err, *words):
    assert code == 2
    assert err.startswith("zhllama: error:") and len(err.strip().splitlines()) == 1, err
    for w in words:
        assert w in err, err


def test_vocab_too_large_for_corpus(tmp_path, capsys, zh_lines):
    corpus = tmp_path / "small.txt"
    corpus.write_text("\n".join(zh_lines[:20]), encoding="utf-8")
    code, err = run(["--corpus", corpus, "--vocab-size", 50000, "--out", tmp_path / "o"], capsys)
    assert_one_line_error(code, err, "--vocab-size 50000", "at most")
    assert not (tmp_path / "o").exists() and not list(tmp_path.glob(".o.*"))


def test_vocab_smaller_than_characters(tmp_path, capsys, tiny_zh_corpus):
    code, err = run(["--corpus", tiny_zh_corpus, "--vocab-size", 500, "--out", tmp_path / "o"], capsys)
    assert_one_line_error(code, err, "--vocab-size 500", "--character-coverage")


def test_empty_corpus(tmp_path, capsys):
    corpus = tmp_path / "empty.txt"
    corpus.write_text("\n   \n\n", encoding="utf-8")
    code, err = run(["--corpus", corpus, "--vocab-size", 1000, "--out", tmp_path / "o"], capsys)
    assert_one_line_error(code, err, "no text", "empty.txt")
    assert not (tmp_path / "o").exists()


def test_missing_corpus_file(tmp_path, capsys):
    code, err = run(["--corpus", tmp_path / "nope.txt", "--vocab-size", 1000, "--out", tmp_path / "o"], capsys)
    assert_one_line_error(code, err, "nope.txt", "not found")


def test_bad_jsonl_line_names_file_and_line(tmp_path, capsys, zh_lines):
    corpus = tmp_path / "bad.jsonl"
    corpus.write_text(json.dumps({"text": zh_lines[0]}, ensure_ascii=False) + "\n{broken\n", encoding="utf-8")
    code, err = run(["--corpus", corpus, "--vocab-size", 1000, "--out", tmp_path / "o"], capsys)
    assert_one_line_error(code, err, "bad.jsonl: line 2")
    assert not (tmp_path / "o").exists()

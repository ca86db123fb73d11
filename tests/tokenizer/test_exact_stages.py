"""A tied-score tokenizer gives SentencePiece's ids in every stage: pre-training data, instruction data,
inference prompts, the resize stage's piece split; and on real data (CMMLU, alpaca-zh) with the official
Chinese-LLaMA-2 tokenizer and the 49,953-piece Chinese-LLaMA merge."""

from __future__ import annotations

import csv
import json

import pytest

from zhllama.tokenizer.load import load_tokenizer
from zhllama.templates import get_template
from zhllama.tokenizer import spm as S
from zhllama.tokenizer.exact import SentencePieceTokenizer, load_sentencepiece_tokenizer


@pytest.fixture(scope="module")
def tied(tied_tokenizer_dir):
    return load_tokenizer(tied_tokenizer_dir), S.processor(tied_tokenizer_dir / "tokenizer.model")


def test_pretraining_blocks_hold_sentencepiece_ids(tied, zh_lines, tmp_path):
    from zhllama.data.corpora import build_pt_dataset, tokenizer_digest

    tok, sp = tied
    docs = list(zh_lines[2000:2200])
    (tmp_path / "c.txt").write_text("\n".join(docs) + "\n", encoding="utf-8")
    dsd, rep = build_pt_dataset([str(tmp_path / "c.txt")], tok, 64, validation_split=0.0, num_proc=2,
                                cache_dir=str(tmp_path / "cache"))
    expected = [i for d in docs for i in [sp.bos_id(), *sp.encode(d), sp.eos_id()]]
    stream = [i for k in range(len(dsd["train"])) for i in dsd["train"][k]["input_ids"].tolist()]
    assert rep["tokens"] == len(expected) and stream == expected[:len(stream)]
    assert tokenizer_digest(tok) == tokenizer_digest(load_tokenizer(tok.vocab_file))  # the cache key is stable


def test_instruction_examples_hold_sentencepiece_ids(tied, zh_lines, tmp_path):
    from zhllama.data.instructions import build_sft_dataset

    tok, sp = tied
    records = [{"instruction": zh_lines[i][:40], "input": "", "output": zh_lines[i + 1][:60]} for i in range(2000, 2060, 2)]
    (tmp_path / "sft.json").write_text(json.dumps(records, ensure_ascii=False), encoding="utf-8")
    dsd, _ = build_sft_dataset([str(tmp_path / "sft.json")], tok, "alpaca", 512, cache_dir=str(tmp_path / "cache"))
    template = get_template("alpaca")
    for rec, ids in zip(records, dsd["train"]["input_ids"]):
        msgs = [{"role": "user", "content": rec["instruction"]}, {"role": "assistant", "content": rec["output"]}]
        expected = [i for s in template.segments(msgs, False)
                    for i in ([sp.bos_id()] if s.kind == "bos" else [sp.eos_id()] if s.kind == "eos" else sp.encode(s.text))]
        assert ids == expected


def test_inference_prompts_and_decoding(tied, tied_tokenizer_dir, zh_lines, tmp_path):
    from zhllama.infer.engine import Engine
    from zhllama.infer.sampling import SamplingParams
    from zhllama.model.init import InitConfig, init_model
    from zhllama.model.load import load_model

    tok, sp = tied
    folder = init_model(InitConfig(tokenizer=str(tied_tokenizer_dir), out=str(tmp_path / "m"), hidden_size=32, layers=1,
                                   heads=2, kv_heads=1, intermediate_size=64, max_position=256, seed=0))
    model, loaded = load_model(folder, device="cpu")
    assert isinstance(loaded, SentencePieceTokenizer)  # the model folder's copied files load the exact way
    engine = Engine(model, loaded, "alpaca")
    for text in zh_lines[2000:2040]:
        assert engine.text_prompt(text) == [sp.bos_id()] + sp.encode(text)
    out = engine.generate([engine.text_prompt("充当前置")], SamplingParams(max_new_tokens=12, temperature=1.0, seed=0))[0]
    assert out.text == sp.decode(out.token_ids)


def test_resize_splits_new_pieces_like_the_fast_files(mistral_sp_model, tmp_path):
    """The resize stage splits each new piece into base ids; the SentencePiece-backed base does it as the fast one."""
    from zhllama.model.resize import base_piece_ids
    from zhllama.tokenizer.hf import write_hf_tokenizer

    folder = write_hf_tokenizer(mistral_sp_model, tmp_path / "m")
    fast, exact = load_tokenizer(folder), load_sentencepiece_tokenizer(folder / "tokenizer.model", {})
    pieces = ["▁中国", "人民", "▁hello", "world", "▁▁▁", "日本語", "▁", "ing▁the"]
    assert [base_piece_ids(p, None, exact) for p in pieces] == [base_piece_ids(p, None, fast) for p in pieces]


def test_gguf_vocabulary_keeps_the_tied_scores(tied, tmp_path):
    """llama.cpp breaks equal scores by position as SentencePiece does, so GGUF export copies them as they are."""
    from zhllama.export.vocab import build_vocab

    tok, _ = tied
    tok.save_pretrained(tmp_path / "saved")
    proto = S.load_proto(tmp_path / "saved" / "tokenizer.model")
    vocab = build_vocab(tmp_path / "saved", len(tok), {})
    assert vocab.tokens == [p.piece for p in proto.pieces] and vocab.scores == [p.score for p in proto.pieces]
    assert vocab.chat_template == tok.chat_template and vocab.add_space_prefix


# --- real data ------------------------------------------------------------------------------------
def cmmlu_texts(data) -> list[str]:
    """Every question and option cell of CMMLU's dev and test files, as read (59,585)."""
    texts = []
    for path in sorted((data / "cmmlu").glob("*/*.csv")):
        with path.open(encoding="utf-8", newline="") as f:
            texts += [row[k] for row in csv.DictReader(f) for k in ("Question", "A", "B", "C", "D")]
    return texts


def alpaca_texts(data, every: int = 13) -> list[str]:
    """The six fields (Chinese and English) of every ``every``-th alpaca-zh record."""
    records = [r for p in sorted((data / "alpaca-zh").glob("*.json")) for r in json.loads(p.read_text(encoding="utf-8"))]
    keys = ("instruction", "input", "output", "en_instruction", "en_input", "en_output")
    return [r[k] for r in records[::every] for k in keys if r.get(k)]


@pytest.fixture(scope="module")
def real_texts(shared_data):
    return {"cmmlu": cmmlu_texts(shared_data), "alpaca-zh": alpaca_texts(shared_data)}


@pytest.fixture(scope="module")
def chinese_llama_49953(shared_data, tmp_path_factory):
    from zhllama.tokenizer.merge import merge_protos

    tok = shared_data / "tokenizers"
    merged = merge_protos(S.load_proto(tok / "llama2" / "tokenizer.model"),
                          [S.load_proto(tok / "chinese-sp-20k" / "chinese_sp.model")], mode="chinese-llama").proto
    path = tmp_path_factory.mktemp("cl49953") / "tokenizer.model"
    S.save_proto(merged, path)
    assert len(merged.pieces) == 49953
    return path


@pytest.mark.parametrize("name", ["chinese-llama2", "chinese-llama-49953"])
def test_real_tokenizers_give_sentencepiece_ids_on_cmmlu_and_alpaca(name, shared_data, real_texts, request):
    model = (shared_data / "tokenizers" / "chinese-llama2" if name == "chinese-llama2"
             else request.getfixturevalue("chinese_llama_49953"))
    tok, sp = load_tokenizer(model), S.processor(model)
    assert isinstance(tok, SentencePieceTokenizer)
    assert len(real_texts["cmmlu"]) == 59585
    for kind, texts in real_texts.items():
        ids = tok(texts, add_special_tokens=False, split_special_tokens=True)["input_ids"]
        bad = [t for t, a, b in zip(texts, ids, sp.encode(texts)) if a != b]
        assert not bad, f"{kind}: {len(bad)} of {len(texts)} differ, first {bad[0]!r}"
    if name == "chinese-llama2":  # the example: the fast files give 充|当前|置
        assert tok.convert_ids_to_tokens(tok("充当前置", add_special_tokens=False)["input_ids"])[-2:] == ["充当", "前置"]

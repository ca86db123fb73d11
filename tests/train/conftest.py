"""Small data files and a grown tokenizer for the training tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from zhllama.train import TrainConfig


def _tiny_config(model_dir, files, out, **over) -> TrainConfig:
    """A few-step configuration for the hidden-64 test model (fast on two CPU cores)."""
    base = dict(model=str(model_dir), train_files=[str(f) for f in files], output_dir=str(out), block_size=64,
                max_length=160, batch_size=4, learning_rate=5e-3, lr_scheduler="constant", warmup_ratio=0.0,
                max_steps=12, logging_steps=1, save_steps=1000, lora_rank=8, lora_alpha=16, lora_dropout=0.0,
                modules_to_save=["embed_tokens", "lm_head"], seed=0, validation_split=0.1, template="alpaca",
                cache_dir=str(Path(out).parent / "data-cache"))
    base.update(over)
    return TrainConfig(**base)


@pytest.fixture(scope="session")
def tiny_config():
    return _tiny_config


@pytest.fixture(scope="session")
def pt_corpus(tmp_path_factory, builtin_text) -> Path:
    """A small corpus repeated many times: a model that learns anything gets a lower loss on it."""
    lines = [t for t in builtin_text["zh"][:12] if t.strip()]
    p = tmp_path_factory.mktemp("pt") / "corpus.txt"
    p.write_text("\n".join(lines * 8) + "\n", encoding="utf-8")
    return p


@pytest.fixture(scope="session")
def sft_data(tmp_path_factory) -> Path:
    rows = [
        {"instruction": "把这句话翻译成英文", "input": "今天天气很好", "output": "The weather is nice today."},
        {"instruction": "中国的首都是哪里？", "input": "", "output": "北京。"},
        {"instruction": "给出一个水果的名字", "input": "", "output": "苹果"},
        {"instruction": "Add the numbers", "input": "2 and 3", "output": "2 + 3 = 5"},
    ]
    p = tmp_path_factory.mktemp("sft") / "alpaca.json"
    p.write_text(json.dumps(rows * 8, ensure_ascii=False), encoding="utf-8")
    return p


def grow_tokenizer(sp_model: Path, pieces: list[str], out: Path) -> Path:
    """Append pieces to a SentencePiece model the way Chinese-LLaMA merged its Chinese vocabulary."""
    from sentencepiece import sentencepiece_model_pb2 as sp_pb2

    from zhllama.tokenizer.hf import write_hf_tokenizer

    proto = sp_pb2.ModelProto()
    proto.ParseFromString(sp_model.read_bytes())
    have = {p.piece for p in proto.pieces}
    for piece in pieces:
        assert piece not in have, piece
        new = sp_pb2.ModelProto.SentencePiece()
        new.piece, new.score = piece, 0.0
        proto.pieces.append(new)
    out.mkdir(parents=True, exist_ok=True)
    model = out / "tokenizer.model"
    model.write_bytes(proto.SerializeToString())
    return write_hf_tokenizer(model, out)


NEW_PIECES = ["▁人民日报", "▁社会主义", "▁经济发展", "▁改革开放", "▁中华人民共和国", "▁新华社", "▁记者", "▁北京",
              "▁今天", "▁天气很好"]


@pytest.fixture(scope="session")
def grown_tokenizers(tmp_path_factory, tiny_sp_model):
    """(plus, plus2): the tiny tokenizer grown by 10 pieces, then by one more (like 32,000 -> 49,953 -> 49,954)."""
    from sentencepiece import sentencepiece_model_pb2 as sp_pb2

    proto = sp_pb2.ModelProto()
    proto.ParseFromString(tiny_sp_model.read_bytes())
    have = {p.piece for p in proto.pieces}
    pieces = [p for p in NEW_PIECES if p not in have]
    root = tmp_path_factory.mktemp("grown")
    plus = grow_tokenizer(tiny_sp_model, pieces, root / "plus")
    plus2 = grow_tokenizer(plus / "tokenizer.model", ["▁助手"] if "▁助手" not in have else ["▁你好呀"], root / "plus2")
    return plus, plus2

"""Fixtures for the tokenizer stage: tricky mixed strings and a tiny Chinese model trained by us."""

from __future__ import annotations

import random

import pytest

PIECES = [
    "", " ", "  ", "   ", "\t", "\t\t", "\n", "\n\n", "\n    ", "\r\n", " \n ", "    ",
    "def f(x):\n    return x  # 注释\n", "for i in range(10):\n\tprint(i)\n", "if a  and  b:\n        pass",
    "😀", "👍🏽", "🇨🇳", "中文😀English", "<s>", "</s>", "<unk>", "<pad>", "▁", "__init__", "x = [1, 2, 3]",
    "1234567890", "３．１４", "ＡＢＣ，。！？", "「引号」『书名』", "“双引号”‘单’", "日本語のテキスト", "한국어 텍스트",
    "𠀀𠀁𪚥", "Ω≈ç√∫", "é è ü ß", "\u00a0nbsp", "zero\u200bwidth", "tab\tin\tline", "trailing   ",
    "http://example.com/路径?q=中文&x=1", "C++ 和 Python 3.11", "GPT-4 是一个模型。", "价格：¥100，约$14。",
]


@pytest.fixture(scope="session")
def zh_lines(builtin_text):
    return builtin_text["zh"]


@pytest.fixture(scope="session")
def en_lines(builtin_text):
    return builtin_text["en"]


@pytest.fixture(scope="session")
def mixed_texts(zh_lines, en_lines) -> list[str]:
    """~600 strings mixing Chinese, English, emoji, code, and every kind of whitespace run."""
    rng = random.Random(0)
    out = list(PIECES)
    for _ in range(550):
        parts = []
        for _ in range(rng.randint(1, 5)):
            kind = rng.random()
            if kind < 0.3:
                line = rng.choice(zh_lines)
                start = rng.randrange(max(1, len(line) - 30))
                parts.append(line[start:start + rng.randint(1, 40)])
            elif kind < 0.55:
                line = rng.choice(en_lines)
                parts.append(line[: rng.randint(1, 80)])
            else:
                parts.append(rng.choice(PIECES))
        out.append("".join(parts))
    return out


@pytest.fixture(scope="session")
def tiny_zh_corpus(tmp_path_factory, zh_lines):
    """About 300 KB of People's Daily text as a .txt corpus."""
    path = tmp_path_factory.mktemp("zh_corpus") / "zh.txt"
    path.write_text("\n".join(zh_lines[:1500]), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def tiny_zh_model(tmp_path_factory, tiny_zh_corpus):
    """A 4,000-piece Chinese BPE model (0.5 s) trained with ``zhllama tokenizer train``."""
    from zhllama.tokenizer.train import TokenizerTrainConfig, train_tokenizer

    out = tmp_path_factory.mktemp("zh_model") / "zh"
    train_tokenizer(TokenizerTrainConfig(corpus=[str(tiny_zh_corpus)], out=str(out), vocab_size=4000), progress=False)
    return out / "tokenizer.model"

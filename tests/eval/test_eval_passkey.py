"""``zhllama eval passkey``: prompts of the asked length with the key at the asked depth, scoring, outputs."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from zhllama.cli import main
from zhllama.errors import ZhllamaError
from zhllama.eval.passkey import (FILLER, INTRO, QUESTION, PasskeyResult, passkey_accuracy, passkey_prompt,
                                  passkey_table, passkey_text)


def test_key_sits_at_the_depth_asked():
    assert passkey_text(100, 0.0, "12345").startswith(INTRO + "密码是12345。")
    assert passkey_text(100, 1.0, "12345").endswith("密码是12345。记住它。" + QUESTION)
    middle = passkey_text(100, 0.5, "12345")
    before = middle.index("12345") - len(INTRO)
    assert 30 <= before <= 50 and middle[middle.index("12345") - 4] == "。"  # a sentence end near the middle


@pytest.mark.parametrize("length", [80, 120, 250])
def test_prompt_fills_the_length_and_no_more(tiny_tokenizer, length):
    ids = passkey_prompt(tiny_tokenizer, length, 0.5, "73519")
    assert length - 8 <= len(ids) <= length
    assert ids[0] == tiny_tokenizer.bos_token_id
    text = tiny_tokenizer.decode(ids[1:])
    assert "73519" in text and text.endswith(QUESTION) and FILLER[:5] in text


def test_prompt_too_short_for_the_template_is_refused(tiny_tokenizer):
    with pytest.raises(ZhllamaError, match="--lengths 5 is too short"):
        passkey_prompt(tiny_tokenizer, 5, 0.5, "12345")


@dataclass
class _Out:
    text: str


class _Reader:
    """An engine stand-in that answers with the key in the prompt (or a wrong one)."""

    def __init__(self, tokenizer, right: bool):
        self.tokenizer, self.right, self.context_length = tokenizer, right, 10_000

    def generate(self, prompts, params):
        import re

        keys = [re.search(r"密码是(\d+)", self.tokenizer.decode(p)).group(1) for p in prompts]
        return [_Out(k if self.right else "0" * len(k)) for k in keys]


@pytest.mark.parametrize("right,expected", [(True, 1.0), (False, 0.0)])
def test_accuracy_counts_answers_that_start_with_the_key(tiny_tokenizer, right, expected):
    result = passkey_accuracy(_Reader(tiny_tokenizer, right), [80, 120], [0.0, 1.0], trials=3, seed=1)
    assert result.accuracy == [[expected] * 2] * 2 and result.mean() == expected
    assert all(n - 8 <= got <= n for n, got in zip([80, 120], result.prompt_tokens))


def test_table_is_depth_by_length_in_percent():
    table = passkey_table(PasskeyResult([64, 128], [0.0, 1.0], 2, [[1.0, 0.5], [0.0, 1.0]], [64, 128]))
    assert "| 0 | 100% | 50% |" in table and "| 1 | 0% | 100% |" in table and "| mean | 50% | 75% |" in table


def test_cli_writes_table_json_and_heatmap(tiny_model_dir, tmp_path, capsys):
    from PIL import Image

    out = tmp_path / "pk"
    code = main(["eval", "passkey", "--model", str(tiny_model_dir), "--lengths", "80", "160", "--depths", "0", "1",
                 "--trials", "2", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "| depth \\ length | 80 | 160 |" in printed and "mean accuracy" in printed
    data = json.loads((out / "passkey.json").read_text(encoding="utf-8"))
    assert data["lengths"] == [80, 160] and data["depths"] == [0.0, 1.0] and len(data["accuracy"]) == 2
    assert all(0.0 <= a <= 1.0 for row in data["accuracy"] for a in row)
    assert Image.open(out / "passkey.png").size[0] > 100
    assert "| mean |" in (out / "passkey.md").read_text(encoding="utf-8")


def test_rope_scaling_lets_longer_prompts_in(tiny_model_dir, tmp_path):
    """The tiny model has 512 positions: 900 tokens need a factor of 2."""
    argv = ["eval", "passkey", "--model", str(tiny_model_dir), "--lengths", "900", "--depths", "0.5", "--trials", "1",
            "--out", str(tmp_path / "pk")]
    assert main(argv) == 2
    assert main(argv + ["--rope-scaling", "yarn:2"]) == 0
    assert json.loads((tmp_path / "pk" / "passkey.json").read_text())["rope_scaling"] == "yarn:2"

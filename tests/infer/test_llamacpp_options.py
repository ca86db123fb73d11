"""``--engine llamacpp`` without llama.cpp: its options, its refusals and the folder's GGUF cache.

The refusals come before llama-cpp-python is imported, so they are tested where it is not installed
(``make test``); the cache is zhllama's own export (f32 needs no llama.cpp).
"""

from __future__ import annotations

import sys

import pytest

from zhllama.cli import build_parser, main


def _run(command, model, tmp_path, *extra):
    args = [command, "--model", str(model), "--engine", "llamacpp", *extra]
    if command == "generate":
        inp = tmp_path / "in.txt"
        inp.write_text("你好\n", encoding="utf-8")
        args += ["--input", str(inp), "--output", str(tmp_path / "out.jsonl")]
    return main(args)


@pytest.mark.parametrize("command", ["chat", "generate", "serve", "webui"])
def test_every_command_takes_engine_llamacpp_and_its_options(command):
    extra = ["--input", "i", "--output", "o"] if command == "generate" else []
    args = build_parser().parse_args([command, "--model", "m.gguf", "--engine", "llamacpp", "--threads", "2",
                                      "--outtype", "q8_0", "--extra-buffers", *extra])
    assert (args.kind, args.threads, args.outtype, args.extra_buffers) == ("llamacpp", 2, "q8_0", True)


def test_without_llama_cpp_the_error_names_the_engine_and_the_install(tiny_model_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # import fails as when it is not installed
    assert _run("generate", tiny_model_dir, tmp_path) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "--engine llamacpp needs llama-cpp-python" in err and "pip install 'zhllama[llamacpp]'" in err


@pytest.mark.parametrize("command", ["chat", "generate", "serve"])
@pytest.mark.parametrize("extra,flag", [
    (["--lora", "adapter"], "--lora"), (["--rope-scaling", "ntk:2"], "--rope-scaling"),
    (["--draft-model", "draft"], "--draft-model"), (["--quantize", "8bit"], "--quantize"),
    (["--dtype", "float32"], "--dtype float32"), (["--device", "cuda"], "--device cuda")])
def test_zhllama_only_options_are_refused_in_one_line_before_loading(tiny_model_dir, tmp_path, monkeypatch, capsys,
                                                                     command, extra, flag):
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # the option error comes first, installed or not
    assert _run(command, tiny_model_dir, tmp_path, *extra) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"zhllama: error: {flag}") and "--engine llamacpp" in err


def test_outtype_with_a_gguf_file_and_a_missing_model_are_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "llama_cpp", None)
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    assert _run("chat", gguf, tmp_path, "--outtype", "q8_0") == 2
    assert "--outtype q8_0 is for a model folder" in capsys.readouterr().err
    assert _run("chat", tmp_path / "nowhere", tmp_path) == 2
    assert "--engine llamacpp: model not found" in capsys.readouterr().err


def test_a_folder_is_exported_once_and_again_when_it_changes(tiny_model_dir, tmp_path):
    """The cache key follows the folder's content and the outtype; a stale file is replaced, not kept."""
    import shutil

    from gguf import GGUFReader

    from zhllama.export.cache import CACHE_DIR, cached_gguf

    folder = shutil.copytree(tiny_model_dir, tmp_path / "model")
    first = cached_gguf(folder, "f32")
    assert first.parent == folder / CACHE_DIR and first.name.startswith("f32-")
    assert GGUFReader(str(first)).fields["general.file_type"].contents() == 0  # ALL_F32
    stamp = first.stat().st_mtime_ns
    assert cached_gguf(folder, "f32") == first and first.stat().st_mtime_ns == stamp  # not written again
    f16 = cached_gguf(folder, "f16")
    assert f16 != first and first.is_file()  # one file per outtype
    (folder / "generation_config.json").write_text('{"eos_token_id": 2, "temperature": 0.5}', encoding="utf-8")
    second = cached_gguf(folder, "f32")
    assert second != first and second.is_file() and not first.exists()
    assert not list((folder / CACHE_DIR).glob("*.partial"))  # nothing half-written is left

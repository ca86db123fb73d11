"""``export gguf --outtype q4_k_m|q5_k_m|q6_k``: llama.cpp's k-quant mixtures through llama-cpp-python.

The errors are tested everywhere; the files themselves only where llama-cpp-python is installed
(skipped otherwise; see docs/export.md for the virtual environment the lead's runs use).
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

from zhllama.cli import main
from zhllama.errors import ZhllamaError
from zhllama.export.kquant import check_kquant_rows


def test_kquant_without_llama_cpp_is_a_clear_error(tiny_model_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # import fails as when it is not installed
    rc = main(["export", "gguf", "--model", str(tiny_model_dir), "--out", str(tmp_path / "m.gguf"),
               "--outtype", "q4_k_m"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1
    assert "--outtype q4_k_m needs llama.cpp's quantizer" in err and "pip install llama-cpp-python" in err
    assert not list(tmp_path.iterdir())


def test_rows_not_divisible_by_256_are_refused_naming_the_tensor():
    check_kquant_rows({"model.norm.weight": (100,), "model.layers.0.mlp.down_proj.weight": (512, 768)}, "q6_k")
    with pytest.raises(ZhllamaError, match=r"--outtype q4_k_m: model.layers.0.mlp.down_proj.weight has rows of "
                                           r"688 values, not a multiple of 256"):
        check_kquant_rows({"model.layers.0.mlp.down_proj.weight": (256, 688)}, "q4_k_m")


def test_imatrix_is_refused_for_a_non_kquant_outtype_and_without_llama_quantize(tiny_model_dir, tmp_path,
                                                                                 monkeypatch, capsys):
    imatrix = tmp_path / "imatrix.dat"
    imatrix.write_bytes(b"\0")
    base = ["export", "gguf", "--model", str(tiny_model_dir), "--imatrix", str(imatrix)]
    assert main(base + ["--out", str(tmp_path / "a.gguf"), "--outtype", "q8_0"]) == 2
    assert "--imatrix applies to the k-quants only" in capsys.readouterr().err
    monkeypatch.setenv("PATH", str(tmp_path))  # no llama-quantize program
    assert main(base + ["--out", str(tmp_path / "b.gguf"), "--outtype", "q6_k"]) == 2
    assert "--imatrix needs llama.cpp's llama-quantize program" in capsys.readouterr().err


@pytest.fixture(scope="module")
def kquant_model_dir(tiny_tokenizer_dir, tmp_path_factory):
    """Rows of 256 and 512 values: every matrix splits into whole 256-value super-blocks."""
    from zhllama.model.init import InitConfig, init_model

    out = tmp_path_factory.mktemp("kquant") / "model"
    return init_model(InitConfig(tokenizer=str(tiny_tokenizer_dir), out=str(out), hidden_size=256, layers=2,
                                 heads=4, intermediate_size=512, max_position=256, seed=0))


def test_kquant_files_hold_llama_cpps_mixtures_and_run(kquant_model_dir, tmp_path, llama_cpp_plain_buffers):
    llama_cpp = pytest.importorskip("llama_cpp")
    from gguf import GGMLQuantizationType as Q, GGUFReader

    from zhllama.export import export_gguf

    sizes, types = {}, {}
    for outtype in ("f16", "q6_k", "q5_k_m", "q4_k_m"):
        path = export_gguf(kquant_model_dir, tmp_path / f"m-{outtype}.gguf", outtype=outtype, progress=False)
        sizes[outtype] = path.stat().st_size
        reader = GGUFReader(str(path))
        types[outtype] = {t.name: Q(t.tensor_type) for t in reader.tensors}
        file_type = int(reader.fields["general.file_type"].parts[-1][0])
        if outtype != "f16":
            assert file_type == getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{outtype.upper()}")
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"m-{o}.gguf" for o in ("f16", "q4_k_m", "q5_k_m", "q6_k")]
    assert sizes["q4_k_m"] < sizes["q5_k_m"] < sizes["q6_k"] < sizes["f16"]
    assert types["q6_k"]["blk.0.attn_q.weight"] == Q.Q6_K and types["q6_k"]["blk.0.attn_norm.weight"] == Q.F32
    assert types["q4_k_m"]["blk.0.attn_q.weight"] == Q.Q4_K
    assert Q.Q6_K in types["q4_k_m"].values()  # the "M" mixture: some tensors (ffn_down, attn_v, output) keep 6 bits
    assert types["q5_k_m"]["blk.0.ffn_gate.weight"] == Q.Q5_K

    logits = {}
    for outtype in ("f16", "q6_k", "q4_k_m"):
        llm = llama_cpp.Llama(model_path=str(tmp_path / f"m-{outtype}.gguf"), n_ctx=64, n_threads=2, logits_all=True,
                              verbose=False)
        llm.eval([1, 100, 200, 300, 400])
        logits[outtype] = np.asarray(llm.scores[:5])
    err = {o: np.abs(logits[o] - logits["f16"]).mean() / np.abs(logits["f16"]).mean() for o in ("q6_k", "q4_k_m")}
    assert err["q6_k"] < err["q4_k_m"] < 0.5

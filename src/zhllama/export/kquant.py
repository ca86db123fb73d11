"""K-quant GGUF files (q4_k_m, q5_k_m, q6_k) through llama.cpp's own quantizer.

gguf-py cannot write the k-quant mixtures (which tensors get 4, 5 or 6 bits is llama.cpp's
policy, ``llama_tensor_get_type``), so ``export gguf --outtype q4_k_m`` writes an f16 GGUF file
first, then runs ``llama_model_quantize`` from llama-cpp-python (an optional dependency) on it, as
``llama-quantize model-f16.gguf model-q4_k_m.gguf Q4_K_M`` would.  An importance matrix
(``--imatrix``, written by llama.cpp's ``llama-imatrix``) goes through llama.cpp's own
``llama-quantize`` program, because the library entry point takes it only as a C++ object.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

from ..errors import ZhllamaError, require_file

# outtype -> (llama_ftype name in llama.h, the name llama-quantize takes)
KQUANTS = {"q4_k_m": ("LLAMA_FTYPE_MOSTLY_Q4_K_M", "Q4_K_M"), "q5_k_m": ("LLAMA_FTYPE_MOSTLY_Q5_K_M", "Q5_K_M"),
           "q6_k": ("LLAMA_FTYPE_MOSTLY_Q6_K", "Q6_K")}
QK_K = 256  # values per k-quant super-block: a row must split into whole super-blocks


def require_llama_cpp(outtype: str):
    try:
        import llama_cpp
    except ImportError:
        raise ZhllamaError(f"--outtype {outtype} needs llama.cpp's quantizer from llama-cpp-python, which is not "
                           "installed", "pip install llama-cpp-python (builds llama.cpp from source, ~5 min), or "
                                        "choose --outtype q8_0 or q4_0, which zhllama writes itself") from None
    return llama_cpp


def llama_quantize_program() -> str:
    program = shutil.which("llama-quantize")
    if program is None:
        raise ZhllamaError("--imatrix needs llama.cpp's llama-quantize program on PATH (llama-cpp-python takes an "
                           "importance matrix only as a C++ object)",
                           "build llama.cpp (github.com/ggml-org/llama.cpp) and put build/bin on PATH, or leave out "
                           "--imatrix")
    return program


def check_kquant_rows(shapes: dict[str, tuple[int, ...]], outtype: str) -> None:
    """Every matrix row must be a whole number of 256-value super-blocks.

    llama.cpp would otherwise quietly store such tensors in another type, and the file would not be
    the q4_k_m / q6_k the user asked for.  The row is the last dimension of the Hugging Face
    tensor (hidden size for most matrices, intermediate size for ffn_down).
    """
    for name, shape in shapes.items():
        if len(shape) == 2 and shape[-1] % QK_K:
            raise ZhllamaError(f"--outtype {outtype}: {name} has rows of {shape[-1]} values, not a multiple of "
                               f"{QK_K} (k-quants store rows in blocks of {QK_K})",
                               "k-quants need hidden_size and intermediate_size divisible by 256 (e.g. 256, 512, "
                               "4096 and 11008); use --outtype q8_0 or q4_0 for this model")


def quantize_file(source: Path, out: Path, outtype: str, imatrix: str | Path | None = None,
                  threads: int | None = None) -> None:
    """Quantize the f16 GGUF ``source`` into ``out`` with llama.cpp's k-quant mixture ``outtype``."""
    ftype_name, program_name = KQUANTS[outtype]
    if imatrix is not None:
        cmd = [llama_quantize_program(), "--imatrix", str(imatrix), str(source), str(out), program_name]
        if threads:
            cmd.append(str(threads))
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no message"])[-1]
            raise ZhllamaError(f"llama-quantize failed on {source.name}: {last}", "check --imatrix belongs to this "
                                                                                  "model (same tensors)")
        return
    llama_cpp = require_llama_cpp(outtype)
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, ftype_name)
    params.nthread = threads or 0
    if llama_cpp.llama_model_quantize(str(source).encode(), str(out).encode(), ctypes.byref(params)) != 0:
        raise ZhllamaError(f"llama.cpp could not quantize {source.name} to {outtype}",
                           "its message is above; export --outtype f16 and run llama-quantize by hand to see more")


def check_imatrix(imatrix: str | None, outtype: str) -> Path | None:
    if imatrix is None:
        return None
    if outtype not in KQUANTS:
        raise ZhllamaError(f"--imatrix applies to the k-quants only, not --outtype {outtype}",
                           f"choose --outtype {' / '.join(KQUANTS)} or leave out --imatrix")
    return require_file(imatrix, "importance matrix file")

"""Export a Hugging Face model folder (LLaMA, Qwen2, Qwen3: ``zhllama.model.families``) to a GGUF file llama.cpp can run.

Written with the ``gguf`` package's own writer and quantizers (the library llama.cpp's converter
uses), not with convert_hf_to_gguf.py, which is not installable from PyPI.  The file is written to
a temp file beside ``out`` and renamed into place when complete.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ZhllamaError, require_dir
from ..io import atomic_file
from .hparams import HParams, add_model_keys, llama3_rope_factors, model_hparams, read_config
from .tensors import OUTTYPES, CheckpointReader, PlannedTensor, convert, stored_nbytes, tensor_qtype
from .vocab import add_vocab_keys, build_vocab

# HF tensor types LLaMA's GGUF layout holds; rotary inv_freq buffers are recomputed by llama.cpp.
_SKIPPED = ("rotary_emb.inv_freq",)


def _file_type(outtype: str):
    from gguf import LlamaFileType as F  # the k-quants' file type is written by llama.cpp's quantizer

    return {"f32": F.ALL_F32, "f16": F.MOSTLY_F16, "bf16": F.MOSTLY_BF16,
            "q8_0": F.MOSTLY_Q8_0, "q4_0": F.MOSTLY_Q4_0}[outtype]


# The LLaMA block every family has; a family adds its own (Qwen3's q/k norms) and biases (Qwen2's q/k/v).
_BLOCK = ("ATTN_NORM", "ATTN_Q", "ATTN_K", "ATTN_V", "ATTN_OUT", "FFN_NORM", "FFN_GATE", "FFN_UP", "FFN_DOWN")


def _expected(hp: HParams) -> dict[str, set[str]]:
    """GGUF tensor kind (gguf.MODEL_TENSOR name) -> the suffixes (weight, bias) the family stores for it."""
    kinds = {k: {"weight"} for k in ("TOKEN_EMBD", "OUTPUT_NORM", "OUTPUT", *_BLOCK, *hp.family.gguf_extra_tensors)}
    for k in hp.family.gguf_bias_tensors:
        kinds[k] = kinds.get(k, set()) | {"bias"}
    return kinds


def plan_tensors(reader: CheckpointReader, hp: HParams, outtype: str) -> list[PlannedTensor]:
    """Map every checkpoint tensor to its GGUF name and type; unknown or missing tensors are errors."""
    import gguf

    arch = hp.family.gguf_arch
    name_map = gguf.TensorNameMap(gguf.MODEL_ARCH[arch.upper()], hp.layers)
    expected = _expected(hp)
    plan = []
    for hf_name in reader.names():
        if hf_name.endswith(_SKIPPED):
            continue
        found = name_map.get_type_and_name(hf_name, try_suffixes=(".weight", ".bias"))
        suffix = hf_name.rsplit(".", 1)[-1]
        if found is None or suffix not in expected.get(found[0].name, ()):
            raise ZhllamaError(f"{reader.model_dir}: tensor {hf_name!r} has no place in a {arch} GGUF file",
                               f"the folder's weights do not match its {hp.family.model_class} config.json "
                               "(merge LoRA adapters first)")
        kind, gguf_name = found
        heads = {gguf.MODEL_TENSOR.ATTN_Q: hp.heads, gguf.MODEL_TENSOR.ATTN_K: hp.kv_heads}.get(kind)
        shape = reader.shape(hf_name)
        plan.append(PlannedTensor(hf_name, gguf_name, shape, tensor_qtype(gguf_name, shape, outtype),
                                  heads if hp.family.gguf_permute_qk else None))
    _check_complete(plan, hp, reader.model_dir)
    plan += _generated_tensors(hp)
    return sorted(plan, key=_file_order)


def _generated_tensors(hp: HParams) -> list[PlannedTensor]:
    """Tensors llama.cpp needs that a checkpoint does not hold: Llama-3.1 RoPE scaling's ``rope_freqs``."""
    from gguf import GGMLQuantizationType as Q

    scaling = hp.rope_scaling or {}
    if (scaling.get("rope_type") or scaling.get("type")) != "llama3":
        return []
    factors = llama3_rope_factors(hp)
    return [PlannedTensor(None, "rope_freqs.weight", factors.shape, Q.F32, None, data=factors)]


def _file_order(t: PlannedTensor) -> tuple[int, str]:
    """token_embd, then the blocks in order, then output_norm and output (llama.cpp's own order)."""
    if t.gguf_name.startswith("blk."):
        return 1 + int(t.gguf_name.split(".")[1]), t.gguf_name
    last = ("output_norm.weight", "output.weight")
    return (1 << 30) + last.index(t.gguf_name) if t.gguf_name in last else 0, t.gguf_name


def _check_complete(plan: list[PlannedTensor], hp: HParams, where: Path) -> None:
    names = {t.gguf_name for t in plan}
    import gguf

    needed = ["token_embd.weight", "output_norm.weight"]
    if not hp.tie_word_embeddings:
        needed.append("output.weight")  # tied models leave it out; llama.cpp then reuses token_embd
    block = {k: s for k, s in _expected(hp).items() if k not in ("TOKEN_EMBD", "OUTPUT_NORM", "OUTPUT")}
    for i in range(hp.layers):
        needed += [gguf.TENSOR_NAMES[gguf.MODEL_TENSOR[k]].format(bid=i) + "." + suffix
                   for k, suffixes in block.items() for suffix in sorted(suffixes)]
    missing = [n for n in needed if n not in names]
    if missing:
        raise ZhllamaError(f"{where}: the checkpoint lacks {len(missing)} {hp.family.name} tensors (first: {missing[0]})",
                           "the model folder is incomplete or its config.json does not match its weights")


def _add_general_keys(writer, name: str, outtype: str) -> None:
    from gguf import GGML_QUANT_VERSION

    writer.add_type("model")
    writer.add_name(name)
    writer.add_file_type(int(_file_type(outtype)))
    writer.add_quantization_version(GGML_QUANT_VERSION)


def _write(path: Path, reader: CheckpointReader, plan: list[PlannedTensor], hp: HParams, vocab,
           name: str, outtype: str, progress: bool) -> None:
    import gguf
    from tqdm import tqdm

    from .tensors import permute_qk

    writer = gguf.GGUFWriter(str(path), hp.family.gguf_arch)
    _add_general_keys(writer, name, outtype)
    add_model_keys(writer, hp, len(vocab.tokens))
    add_vocab_keys(writer, vocab)
    for t in plan:  # header first, from shapes only; the data follows one tensor at a time
        writer.add_tensor_info(t.gguf_name, t.shape, np.float32, stored_nbytes(t.shape, t.qtype), raw_dtype=t.qtype)
    try:
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        bar = tqdm(plan, desc=f"gguf {outtype}", unit="tensor", disable=not progress)
        for t in bar:
            data = reader.load(t.hf_name) if t.data is None else t.data
            if t.permute_heads:
                data = permute_qk(data, t.permute_heads)
            writer.write_tensor_data(convert(data, t.qtype))
    finally:
        writer.close()


def export_gguf(model: str | Path, out: str | Path, outtype: str = "f16", name: str | None = None,
                overwrite: bool = False, progress: bool = True, imatrix: str | Path | None = None) -> Path:
    """Write ``model`` (a Hugging Face folder of a family llama.cpp runs) as a GGUF file at ``out``.

    The k-quants (``q4_k_m``, ``q5_k_m``, ``q6_k``) are written as f16 first and quantized by
    llama.cpp (see kquant.py); ``imatrix`` weights their rounding.
    """
    from .kquant import (KQUANTS, check_imatrix, check_kquant_rows, llama_quantize_program, quantize_file,
                         require_llama_cpp)

    model_dir = require_dir(model, "model folder")
    out = Path(out)
    if outtype not in OUTTYPES:
        raise ZhllamaError(f"unknown outtype {outtype!r}", f"choose one of {', '.join(OUTTYPES)}")
    if out.is_dir():
        raise ZhllamaError(f"--out is a folder: {out}", "give a file name such as model-q8_0.gguf")
    if out.exists() and not overwrite:
        raise ZhllamaError(f"output file already exists: {out}", "pass --overwrite or choose another --out")
    imatrix = check_imatrix(imatrix, outtype)
    kquant = outtype in KQUANTS
    if kquant and imatrix:  # the quantizer must be there before anything is written
        llama_quantize_program()
    elif kquant:
        require_llama_cpp(outtype)
    config = read_config(model_dir)
    hp = model_hparams(config, model_dir)
    reader = CheckpointReader(model_dir)
    if kquant:
        check_kquant_rows({n: reader.shape(n) for n in reader.names()}, outtype)
    written = "f16" if kquant else outtype
    plan = plan_tensors(reader, hp, written)
    n_rows = next(t.shape[0] for t in plan if t.gguf_name == "token_embd.weight")
    vocab = build_vocab(model_dir, n_rows, {"bos": hp.bos_token_id, "eos": hp.eos_token_id, "pad": hp.pad_token_id})
    with atomic_file(out, suffix=".partial") as tmp:
        if not kquant:
            _write(tmp, reader, plan, hp, vocab, name or model_dir.resolve().name, outtype, progress)
        else:
            f16 = tmp.with_name(tmp.name + ".f16")  # a step only: removed whatever happens
            try:
                _write(f16, reader, plan, hp, vocab, name or model_dir.resolve().name, written, progress)
                quantize_file(f16, tmp, outtype, imatrix)
            finally:
                f16.unlink(missing_ok=True)
    return out

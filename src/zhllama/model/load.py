"""Loading a model (+ tokenizer, + optional LoRA adapter) with hand-off checks.

A local folder or a Hugging Face hub id.  Every problem a user can fix (missing folder, missing
weights, tokenizer larger than the embeddings, adapter for another base) is a one-line
:class:`ZhllamaError` that says what to do.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ZhllamaError

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")


def is_local(path: str | Path) -> bool:
    p = Path(path)
    return p.exists() or str(path).startswith((".", "/", "~")) or str(path).count("/") != 1


def check_model_dir(path: str | Path) -> Path:
    """A local model folder must hold config.json and weights; a hub id is passed through."""
    p = Path(path).expanduser()
    if not p.exists():
        raise ZhllamaError(f"model folder not found: {p}", "check the path, or give a Hugging Face hub id such as meta-llama/Llama-2-7b-hf")
    if not (p / "config.json").is_file():
        raise ZhllamaError(f"{p} has no config.json", "give a Hugging Face model folder (written by save_pretrained or `zhllama merge`)")
    if not any((p / w).is_file() for w in WEIGHT_FILES):
        raise ZhllamaError(f"{p} has no model weights (*.safetensors)", "the folder is incomplete; re-run the stage that wrote it")
    return p


def resolve_dtype(dtype: str | None, device: str):
    import torch

    if dtype in (None, "auto"):
        if device.startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    table = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16, "fp16": torch.float16,
             "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}
    if dtype not in table:
        raise ZhllamaError(f"unknown dtype '{dtype}'", f"use one of: auto, {', '.join(table)}")
    return table[dtype]


def resolve_device(device: str | None) -> str:
    import torch

    if device in (None, "auto"):
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    return device


def load_tokenizer(path: str | Path):
    from ..tokenizer.hf import load_hf_tokenizer

    return load_hf_tokenizer(path)


def check_vocab(model, tokenizer, where: str) -> None:
    """The tokenizer must not have ids beyond the embedding matrix."""
    rows = model.get_input_embeddings().weight.shape[0]
    if len(tokenizer) > rows:
        raise ZhllamaError(
            f"{where}: tokenizer has {len(tokenizer)} tokens but the model's embedding has {rows} rows",
            "resize the model to the tokenizer first (zhllama train pt resizes automatically), or use the matching tokenizer")


def load_model(path: str | Path, lora: str | Path | list | None = None, dtype: str | None = "auto",
               device: str | None = "auto", tokenizer: str | Path | None = None, merge_lora: bool = False):
    """Return ``(model, tokenizer)`` in eval mode on ``device``.

    ``lora`` is an adapter folder (or a list, applied in order) loaded with peft on top of the
    base; ``merge_lora`` folds it into the weights for faster inference.
    """
    from transformers import AutoModelForCausalLM

    device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, device)
    src = check_model_dir(path) if is_local(path) else str(path)
    tok_src = tokenizer or (lora[-1] if isinstance(lora, list) and lora else lora) or src
    if lora and not (Path(tok_src) / "tokenizer.json").exists():
        tok_src = tokenizer or src
    tok = load_tokenizer(tok_src)
    try:
        model = AutoModelForCausalLM.from_pretrained(str(src), dtype=torch_dtype)
    except OSError as e:
        raise ZhllamaError(f"cannot load model {src}: {str(e).splitlines()[0]}", "check the path or hub id") from None
    for adapter in ([lora] if isinstance(lora, (str, Path)) else (lora or [])):
        model = _apply_lora(model, adapter, tok, merge_lora)
    check_vocab(model, tok, str(src))
    model.to(device)
    model.eval()
    return model, tok


def _apply_lora(model, adapter: str | Path, tokenizer, merge: bool):
    from peft import PeftModel

    a = Path(adapter)
    if not (a / "adapter_config.json").is_file():
        raise ZhllamaError(f"{a} is not a LoRA adapter (no adapter_config.json)", "give a folder written by `zhllama train`")
    if len(tokenizer) > model.get_input_embeddings().weight.shape[0]:
        model.resize_token_embeddings(len(tokenizer))
    model = PeftModel.from_pretrained(model, str(a))
    return model.merge_and_unload() if merge else model


META_FILE = "zhllama.json"


def read_model_meta(path: str | Path) -> dict:
    """zhllama's notes about a model folder (e.g. ``{"template": "llama2-zh"}``), or {}."""
    from ..io import read_json

    p = Path(path) / META_FILE
    if not p.is_file():
        return {}
    return read_json(p, "delete it or fix it")


def write_model_meta(path: str | Path, **fields) -> None:
    """Record facts later stages need (the chat template an SFT model was trained with, ...)."""
    from ..io import write_json_atomic

    meta = read_model_meta(path)
    meta.update(fields)
    write_json_atomic(Path(path) / META_FILE, meta)

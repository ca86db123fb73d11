"""``merge_adapters``: fold LoRA adapters, in order, into a full model.

Each adapter is checked against the model it is merged into before peft touches it: its tensors'
shapes must match the layers (architecture), and its embedding rows must be at least the model's
(an adapter never shrinks the vocabulary).  When an adapter holds a larger ``embed_tokens`` /
``lm_head`` (vocabulary extended before it was trained), the model is first grown to that size and
the adapter's trained rows replace the whole matrices, so vocabularies can grow adapter after
adapter (Alpaca-Plus: 32,000 -> LLaMA-Plus 49,953 -> Alpaca-Plus 49,954).
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..errors import ZhllamaError, check_output_dir, require_dir
from ..io import atomic_dir, read_json
from .lora import read_adapter_shapes

log = logging.getLogger(__name__)

PEFT_PREFIX = "base_model.model."


def read_adapter_config(adapter: Path) -> dict:
    path = adapter / "adapter_config.json"
    if not path.is_file():
        raise ZhllamaError(f"{adapter} is not a LoRA adapter (no adapter_config.json)",
                           "give a folder written by `zhllama train` (its final/ folder)")
    cfg = read_json(path, "the adapter folder is damaged; re-run training")
    if cfg.get("peft_type") != "LORA":
        raise ZhllamaError(f"{adapter} is a {cfg.get('peft_type')} adapter, not LoRA", "only LoRA adapters can be merged")
    return cfg


def adapter_embedding_rows(shapes: dict[str, tuple]) -> int | None:
    """Vocabulary rows a saved adapter carries in full (modules_to_save embed_tokens / lm_head)."""
    rows = {shape[0] for key, shape in shapes.items()
            if key.endswith(("embed_tokens.weight", "lm_head.weight")) and ".lora_" not in key}
    if len(rows) > 1:
        raise ZhllamaError(f"the adapter's embed_tokens and lm_head have different row counts {sorted(rows)}",
                           "the adapter is damaged; re-run training")
    return rows.pop() if rows else None


def check_adapter_fits(model, shapes: dict[str, tuple], adapter: Path) -> None:
    """Every tensor of the adapter must belong to a layer of ``model`` with matching sizes."""
    for key, shape in shapes.items():
        name = key[len(PEFT_PREFIX):] if key.startswith(PEFT_PREFIX) else key
        module_name, kind = _module_and_kind(name)
        try:
            module = model.get_submodule(module_name)
        except AttributeError:
            raise ZhllamaError(f"{adapter} does not fit the base model: it has weights for '{module_name}', "
                               "which the base model does not have",
                               "merge the adapter onto the base model it was trained from (see its adapter_config.json)") from None
        expected = _expected_shape(module, kind, shape)
        if expected is not None and tuple(expected) != tuple(shape):
            raise ZhllamaError(f"{adapter} does not fit the base model: '{name}' is {list(shape)} in the adapter "
                               f"but the base model's layer needs {list(expected)}",
                               "merge the adapter onto the base model it was trained from (same size and architecture)")


def _module_and_kind(name: str) -> tuple[str, str]:
    for kind in ("lora_A", "lora_B"):
        marker = f".{kind}."
        if marker in name:
            return name.split(marker)[0], kind
    return name.rsplit(".", 1)[0], "full"


def _expected_shape(module, kind: str, shape: tuple):
    weight = getattr(module, "weight", None)
    if weight is None:
        return None
    out_features, in_features = weight.shape[0], weight.shape[-1]
    if kind == "lora_A":
        return (shape[0], in_features)
    if kind == "lora_B":
        return (out_features, shape[-1])
    return tuple(weight.shape)


def fit_vocabulary(model, adapter: Path, shapes: dict[str, tuple]) -> None:
    """Grow the model to the adapter's vocabulary, or refuse when they cannot match."""
    from ..model.load import read_model_meta

    rows = model.get_input_embeddings().weight.shape[0]
    carried = adapter_embedding_rows(shapes)
    trained_with = read_model_meta(adapter).get("vocab_size")
    if carried is None:
        if trained_with and trained_with != rows:
            raise ZhllamaError(
                f"{adapter} was trained with {trained_with:,} embedding rows but holds no embedding weights, and the "
                f"model it is merged into has {rows:,}",
                "merge it onto the (resized) model it was trained on, or retrain with modules_to_save: [embed_tokens, lm_head]")
        return
    if carried < rows:
        raise ZhllamaError(
            f"{adapter} has a {carried:,}-row vocabulary but the model it is merged into already has {rows:,} rows",
            "check the base model and the order of --lora (the adapter with the smaller vocabulary goes first)")
    if carried > rows:
        log.info("growing the vocabulary %d -> %d rows for %s", rows, carried, adapter)
        model.resize_token_embeddings(carried, mean_resizing=False)  # rows are replaced by the adapter's


def apply_and_merge(model, adapter: Path):
    """Check ``adapter`` against ``model``, apply it with peft and fold it into the weights."""
    from peft import PeftModel

    read_adapter_config(adapter)
    shapes = read_adapter_shapes(adapter)
    fit_vocabulary(model, adapter, shapes)
    check_adapter_fits(model, shapes, adapter)
    peft_model = PeftModel.from_pretrained(model, str(adapter))
    return peft_model.merge_and_unload()


def tokenizer_source(base: str, adapters: list[Path]) -> str:
    """The last adapter that carries tokenizer files, else the base model."""
    for a in reversed(adapters):
        if (a / "tokenizer.json").is_file() or (a / "tokenizer.model").is_file():
            return str(a)
    return base


def merge_dtype(name: str, model_config):
    import torch

    from ..model.load import resolve_dtype

    if name in (None, "auto"):
        stored = getattr(model_config, "dtype", None) or getattr(model_config, "torch_dtype", None)
        if isinstance(stored, str):
            stored = getattr(torch, stored, None)
        return stored if isinstance(stored, torch.dtype) else torch.float32
    return resolve_dtype(name, "cpu")


def load_merge_base(base: str):
    """The base model in fp32 (merging adds small LoRA products: do it at full precision)."""
    import torch
    from transformers import AutoModelForCausalLM

    from .prepare import model_source

    src = model_source(base)
    try:
        return src, AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32)
    except OSError as e:
        raise ZhllamaError(f"cannot load model {src}: {str(e).splitlines()[0]}", "check the path or hub id") from None


def merge_adapters(base: str, loras: list, out: str | Path, dtype: str = "auto", max_shard_size: str = "2GB",
                   overwrite: bool = False) -> Path:
    """Merge ``loras`` in order into ``base`` and write a full model folder to ``out``; return ``out``."""
    from tqdm import tqdm

    from ..model.load import load_tokenizer, read_model_meta, write_model_meta
    from ..tokenizer.hf import set_chat_template
    from .prepare import check_tokenizer_extends_base, load_base_tokenizer, save_tokenizer

    if not loras:
        raise ZhllamaError("no adapter to merge", "pass --lora ADAPTER (repeat for several)")
    check_output_dir(out, overwrite)
    adapters = [require_dir(a, "LoRA adapter") for a in loras]
    for a in adapters:
        read_adapter_config(a)
    src, model = load_merge_base(str(base))
    target = merge_dtype(dtype, model.config)
    for adapter in tqdm(adapters, desc="merging adapters", unit="adapter"):
        model = apply_and_merge(model, adapter)
    tok_src = tokenizer_source(src, adapters)
    tok = load_tokenizer(tok_src)
    base_tok = load_base_tokenizer(src)
    if base_tok is not None and tok_src != src:
        check_tokenizer_extends_base(tok, base_tok, tok_src, src)
    rows = model.get_input_embeddings().weight.shape[0]
    if len(tok) > rows:
        raise ZhllamaError(f"the tokenizer in {tok_src} has {len(tok):,} tokens but the merged model has {rows:,} rows",
                           "the adapters hold no trained rows for the new tokens; merge the adapters trained with this tokenizer")
    model = model.to(target)
    meta = {"stage": "merged", "base_model": str(base), "loras": [str(a) for a in adapters], "vocab_size": rows}
    template = next((read_model_meta(a)["template"] for a in reversed(adapters) if read_model_meta(a).get("template")), None)
    if template:
        meta["template"] = template
    with atomic_dir(out, overwrite) as tmp:
        model.save_pretrained(tmp, max_shard_size=max_shard_size)
        _write_generation_config(model, tok, tmp)
        save_tokenizer(tok_src, tok, tmp)
        write_model_meta(tmp, **meta)
        set_chat_template(tmp)
    return Path(out)


def _write_generation_config(model, tok, folder: Path) -> None:
    """Keep the base's generation config; make sure it knows the tokenizer's EOS/BOS/PAD."""
    from transformers import GenerationConfig

    gen = getattr(model, "generation_config", None) or GenerationConfig()
    gen.bos_token_id = tok.bos_token_id if tok.bos_token_id is not None else gen.bos_token_id
    gen.eos_token_id = tok.eos_token_id if tok.eos_token_id is not None else gen.eos_token_id
    if tok.pad_token_id is not None:
        gen.pad_token_id = tok.pad_token_id
    gen.save_pretrained(folder)

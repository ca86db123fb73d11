"""``merge_adapters``: fold LoRA adapters, in order, into a full model.

Each adapter is checked against the model it is merged into before peft touches it
(:func:`zhllama.model.load.apply_adapter`): its tensors' shapes must match the layers
(architecture), and its embedding rows must be at least the model's (an adapter never shrinks the
vocabulary).  When an adapter holds a larger ``embed_tokens`` /
``lm_head`` (vocabulary extended before it was trained), the model is first grown to that size and
the adapter's trained rows replace the whole matrices, so vocabularies can grow adapter after
adapter (Alpaca-Plus: 32,000 -> LLaMA-Plus 49,953 -> Alpaca-Plus 49,954).
"""

from __future__ import annotations

from pathlib import Path

from ..checks import check_output_dir
from ..errors import ZhllamaError, require_dir
from ..io import atomic_dir


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

    from ..model.load import load_causal_lm, model_source

    src = model_source(base)
    return src, load_causal_lm(src, torch.float32)


def merge_adapters(base: str, loras: list, out: str | Path, dtype: str = "auto", max_shard_size: str = "2GB",
                   overwrite: bool = False, template: str | None = None) -> Path:
    """Merge ``loras`` in order into ``base`` and write a full model folder to ``out``; return ``out``.

    ``template`` is recorded in its zhllama.json (default: the last adapter's that has one).
    """
    from tqdm import tqdm

    from ..meta import read_meta, write_meta
    from ..model import load as L
    from ..model.families import resolve_template
    from ..tokenizer.chat import set_chat_template
    from ..tokenizer.load import load_base_tokenizer, load_tokenizer
    from .prepare import save_tokenizer

    if not loras:
        raise ZhllamaError("no adapter to merge", "pass --lora ADAPTER (repeat for several)")
    check_output_dir(out, overwrite)
    adapters = [require_dir(a, "LoRA adapter") for a in loras]
    for a in adapters:
        L.read_adapter_config(a)
    src, model = load_merge_base(str(base))
    target = merge_dtype(dtype, model.config)
    for adapter in tqdm(adapters, desc="merging adapters", unit="adapter"):
        model = L.apply_adapter(model, adapter, merge=True)
    tok_src = L.tokenizer_source(src, adapters)
    tok = load_tokenizer(tok_src)
    base_tok = load_base_tokenizer(src)
    if base_tok is not None and tok_src != src:
        L.check_tokenizer_extends_base(tok, base_tok, f"the tokenizer in {tok_src}", f"the model's tokenizer ({src})")
    rows = L.embedding_rows(model)
    L.check_tokenizer_fits(len(tok), rows, f"the tokenizer in {tok_src}", "the merged model",
                           "the adapters hold no trained rows for the new tokens; merge the adapters trained with this tokenizer")
    model = model.to(target)
    template = template or next((read_meta(a).template for a in reversed(adapters) if read_meta(a).template), None)
    with atomic_dir(out, overwrite) as tmp:
        model.save_pretrained(tmp, max_shard_size=max_shard_size)
        _write_generation_config(model, tok, tmp)
        save_tokenizer(tok_src, tok, tmp)
        write_meta(tmp, stage="merged", base_model=str(base), loras=[str(a) for a in adapters], template=template,
                   tokenizer_size=len(tok), vocab_size=rows)
        set_chat_template(tmp, resolve_template(tmp))
    return Path(out)


def _write_generation_config(model, tok, folder: Path) -> None:
    """Keep the base's generation config; make sure it knows the tokenizer's EOS/BOS/PAD.

    The base's EOS ids are kept with the tokenizer's: Llama-3 and Qwen2 Instruct folders end on several
    (``[128001, 128009]``: end of text and end of turn), and other runtimes stop where this file says.
    """
    from transformers import GenerationConfig

    gen = getattr(model, "generation_config", None) or GenerationConfig()
    gen.bos_token_id = tok.bos_token_id if tok.bos_token_id is not None else gen.bos_token_id
    gen.eos_token_id = _with_id(gen.eos_token_id, tok.eos_token_id)
    if tok.pad_token_id is not None:
        gen.pad_token_id = tok.pad_token_id
    gen.save_pretrained(folder)


def _with_id(ids, token_id):
    """``ids`` (None, an id or a list of them) with ``token_id`` added: one id stays an int, several a list."""
    kept = [] if ids is None else list(ids) if isinstance(ids, (list, tuple)) else [ids]
    if token_id is not None and token_id not in kept:
        kept.append(token_id)
    return kept[0] if len(kept) == 1 else (kept or None)

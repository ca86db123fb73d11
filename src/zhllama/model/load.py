"""The one place that loads models and LoRA adapters, with the hand-off checks.

Every stage (train, merge, resize, chat/generate/serve/webui, eval, the pipeline) loads through
here, so a folder that loads in one stage loads in all of them:

* a model from a local folder or a Hugging Face hub id (:func:`load_causal_lm`, :func:`load_model`),
  with its tokenizer from :func:`zhllama.tokenizer.load.load_tokenizer` (a folder transformers
  reads, or a bare SentencePiece ``tokenizer.model`` with SentencePiece's exact ids);
* LoRA adapters (:func:`apply_adapter`), after growing the model to the vocabulary the adapter was
  trained with (:func:`fit_vocabulary`: a resized or padded vocabulary), and checking that its
  tensors fit the model's layers;
* the hand-off checks: a tokenizer must extend the base model's tokenizer
  (:func:`check_tokenizer_extends_base`) and must not have more tokens than the embedding has rows
  (:func:`check_tokenizer_fits`).

Every problem a user can fix is a one-line :class:`ZhllamaError` that says what to do.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..checks import check_weights_readable, is_local
from ..errors import ZhllamaError
from ..meta import read_meta
from ..rope_scaling import RopeScaling
from ..tokenizer.load import load_base_tokenizer, load_tokenizer
from .rope import apply_rope_scaling, config_rope

log = logging.getLogger(__name__)

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
PEFT_PREFIX = "base_model.model."


# --- where a model comes from ---------------------------------------------------------------
def check_model_dir(path: str | Path) -> Path:
    """A local model folder must hold config.json and weights."""
    p = Path(path).expanduser()
    if not p.exists():
        raise ZhllamaError(f"model folder not found: {p}", "check the path, or give a Hugging Face hub id such as meta-llama/Llama-2-7b-hf")
    if not (p / "config.json").is_file():
        raise ZhllamaError(f"{p} has no config.json", "give a Hugging Face model folder (written by save_pretrained or `zhllama merge`)")
    if not any((p / w).is_file() for w in WEIGHT_FILES):
        raise ZhllamaError(f"{p} has no model weights (*.safetensors)", "the folder is incomplete; re-run the stage that wrote it")
    check_weights_readable(p)  # a truncated shard is named here, not by safetensors deep inside a load
    return p


def model_source(path: str | Path) -> str:
    """A checked local folder (of a model family zhllama knows) or a hub id, as a string for transformers."""
    from .families import family_of_folder

    if not is_local(path):
        return str(path)
    folder = check_model_dir(path)
    family_of_folder(folder)  # an unknown architecture is refused before any weights are read
    return str(folder)


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


def load_causal_lm(path: str | Path, dtype="auto", *, quantize: str | None = None, attn: str | None = None,
                   device: str | None = None, keep: tuple[str, ...] | list[str] = ()):
    """The causal LM of a local folder (checked first) or hub id; ``dtype`` a torch dtype or "auto".

    ``quantize`` (8bit/4bit) loads it through bitsandbytes onto ``device``, the modules in ``keep``
    unquantized; ``attn`` picks the attention kernel (see :mod:`zhllama.model.quantize`).
    """
    from transformers import AutoModelForCausalLM

    from .quantize import check_attn, check_quantize, loading_arguments

    device = resolve_device(device)
    check_quantize(quantize, device)
    check_attn(attn, device)
    src = model_source(path)
    compute = dtype if dtype not in (None, "auto") else resolve_dtype("auto", device)
    extra = loading_arguments(quantize, attn, device, compute, keep)
    try:
        return AutoModelForCausalLM.from_pretrained(src, dtype=dtype, **extra)
    except OSError as e:
        raise ZhllamaError(f"cannot load model {src}: {str(e).splitlines()[0]}", "check the path or hub id") from None


def load_sequence_classifier(path: str | Path, dtype="auto", num_labels: int = 1):
    """A ``*ForSequenceClassification`` model (a reward model: ``num_labels=1``, one score per sequence).

    A causal LM folder loads too: its body is kept, its LM head dropped and a new score head
    initialised (from the current torch seed).
    """
    from transformers import AutoModelForSequenceClassification

    src = model_source(path)
    try:
        return AutoModelForSequenceClassification.from_pretrained(src, dtype=dtype, num_labels=num_labels)
    except (OSError, ValueError) as e:
        raise ZhllamaError(f"cannot load {src} as a reward model: {str(e).splitlines()[0]}",
                           "give a model folder of a family zhllama knows (docs/families.md), e.g. one written by "
                           "`zhllama train sft`/`merge`/`train rm`") from None


# --- tokenizers (loaded by zhllama.tokenizer.load) --------------------------------------------
def tokenizer_source(base: str, adapters: list[Path]) -> str:
    """The last adapter that carries tokenizer files, else the base model."""
    for a in reversed(adapters):
        if (a / "tokenizer.json").is_file() or (a / "tokenizer.model").is_file():
            return str(a)
    return base


# --- hand-off checks ------------------------------------------------------------------------
def embedding_rows(model) -> int:
    return model.get_input_embeddings().weight.shape[0]


def check_tokenizer_extends_base(tokenizer, base_tokenizer, name: str = "the tokenizer",
                                 base_name: str = "the model's tokenizer") -> None:
    """``tokenizer`` must keep every id of ``base_tokenizer`` and may only add tokens after them."""
    n, n_base = len(tokenizer), len(base_tokenizer)
    hint = ("give the tokenizer the model was trained with, or one built from it with `zhllama tokenizer merge` "
            "(new pieces go after the old ones; a model read with another model's tokenizer gives garbage)")
    if n < n_base:
        raise ZhllamaError(f"{name} does not extend {base_name}: it has {n:,} tokens, fewer than the {n_base:,} there", hint)
    ours = tokenizer.convert_ids_to_tokens(list(range(n_base)))
    theirs = base_tokenizer.convert_ids_to_tokens(list(range(n_base)))
    for i, (a, b) in enumerate(zip(ours, theirs)):
        if a != b:
            raise ZhllamaError(f"{name} does not extend {base_name}: id {i} is {a!r} there but {b!r} in the base", hint)


def check_tokenizer_fits(n_tokens: int, rows: int, name: str = "the tokenizer", model_name: str = "the model",
                         hint: str = "resize the model to the tokenizer first (zhllama train pt resizes automatically), "
                                     "or use the matching tokenizer") -> None:
    """No token id may lie beyond the embedding matrix."""
    if n_tokens > rows:
        raise ZhllamaError(f"{name} has {n_tokens:,} tokens but {model_name} has {rows:,} embedding rows", hint)


# --- LoRA adapters -------------------------------------------------------------------------
def read_adapter_config(adapter: Path) -> dict:
    from ..io import read_json

    path = Path(adapter) / "adapter_config.json"
    if not path.is_file():
        raise ZhllamaError(f"{adapter} is not a LoRA adapter (no adapter_config.json)",
                           "give a folder written by `zhllama train` (its final/ folder)")
    cfg = read_json(path, "the adapter folder is damaged; re-run training")
    if cfg.get("peft_type") != "LORA":
        raise ZhllamaError(f"{adapter} is a {cfg.get('peft_type')} adapter, not LoRA", "only LoRA adapters are supported")
    return cfg


def adapter_weights_file(adapter_dir: str | Path) -> Path | None:
    d = Path(adapter_dir)
    for name in ("adapter_model.safetensors", "adapter_model.bin"):
        if (d / name).is_file():
            return d / name
    return None


def read_adapter_shapes(adapter_dir: str | Path) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape of a saved adapter, without loading the weights."""
    f = adapter_weights_file(adapter_dir)
    if f is None:
        raise ZhllamaError(f"{adapter_dir} has no adapter_model.safetensors", "the adapter folder is incomplete")
    if f.suffix == ".bin":
        import torch

        return {k: tuple(v.shape) for k, v in torch.load(f, map_location="cpu", weights_only=True).items()}
    from safetensors import safe_open

    with safe_open(str(f), framework="pt") as sf:
        return {k: tuple(sf.get_slice(k).get_shape()) for k in sf.keys()}


def adapter_embedding_rows(shapes: dict[str, tuple]) -> int | None:
    """Vocabulary rows a saved adapter carries in full (modules_to_save embed_tokens / lm_head)."""
    rows = {shape[0] for key, shape in shapes.items()
            if key.endswith(("embed_tokens.weight", "lm_head.weight")) and ".lora_" not in key}
    if len(rows) > 1:
        raise ZhllamaError(f"the adapter's embed_tokens and lm_head have different row counts {sorted(rows)}",
                           "the adapter is damaged; re-run training")
    return rows.pop() if rows else None


def fit_vocabulary(model, adapter: Path, shapes: dict[str, tuple]) -> None:
    """Grow the model to the adapter's vocabulary (resized or padded rows), or refuse when they cannot match."""
    rows = embedding_rows(model)
    carried = adapter_embedding_rows(shapes)
    trained_with = read_meta(adapter).vocab_size
    if carried is None:
        if trained_with and trained_with != rows:
            raise ZhllamaError(
                f"{adapter} was trained with {trained_with:,} embedding rows but holds no embedding weights, and the "
                f"model it is applied to has {rows:,}",
                "apply it to the (resized) model it was trained on, or retrain with modules_to_save: [embed_tokens, lm_head]")
        return
    if carried < rows:
        raise ZhllamaError(
            f"{adapter} has a {carried:,}-row vocabulary but the model it is applied to already has {rows:,} rows",
            "check the base model and the order of --lora (the adapter with the smaller vocabulary goes first)")
    if carried > rows:
        log.info("growing the vocabulary %d -> %d rows for %s", rows, carried, adapter)
        model.resize_token_embeddings(carried, mean_resizing=False)  # rows are replaced by the adapter's


def check_adapter_fits(model, shapes: dict[str, tuple], adapter: Path) -> None:
    """Every tensor of the adapter must belong to a layer of ``model`` with matching sizes."""
    hint = "apply the adapter to the base model it was trained from (see its adapter_config.json)"
    for key, shape in shapes.items():
        name = key[len(PEFT_PREFIX):] if key.startswith(PEFT_PREFIX) else key
        module_name, kind = _module_and_kind(name)
        try:
            module = model.get_submodule(module_name)
        except AttributeError:
            raise ZhllamaError(f"{adapter} does not fit the base model: it has weights for '{module_name}', "
                               "which the base model does not have", hint) from None
        expected = _expected_shape(module, kind, shape)
        if expected is not None and tuple(expected) != tuple(shape):
            raise ZhllamaError(f"{adapter} does not fit the base model: '{name}' is {list(shape)} in the adapter "
                               f"but the base model's layer needs {list(expected)}", hint)


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


def apply_adapter_rope_scaling(model, adapter: Path) -> None:
    """An adapter trained with ``--rope-scaling`` (recorded in its zhllama.json) scales its base's RoPE."""
    scaling = read_meta(adapter).rope_scaling
    if scaling is None:
        return
    current = config_rope(model.config)
    kind = current.get("rope_type", "default")
    if kind == "default":
        apply_rope_scaling(model, scaling)
    elif RopeScaling.of_parameters(current) != scaling:
        raise ZhllamaError(f"adapter {adapter} was trained with --rope-scaling {scaling} but the model uses {kind} "
                           f"RoPE scaling by {current.get('factor')}", "apply it to the base model it was trained on")


def apply_adapter(model, adapter: str | Path, merge: bool = False):
    """Check ``adapter`` against ``model``, grow the vocabulary to it and apply it with peft.

    ``merge`` folds it into the weights (returns a plain model); otherwise a ``PeftModel``.
    """
    from peft import PeftModel

    adapter = Path(adapter)
    read_adapter_config(adapter)
    shapes = read_adapter_shapes(adapter)
    fit_vocabulary(model, adapter, shapes)
    check_adapter_fits(model, shapes, adapter)
    apply_adapter_rope_scaling(model, adapter)
    peft_model = PeftModel.from_pretrained(model, str(adapter))
    return peft_model.merge_and_unload() if merge else peft_model


# --- everything together -------------------------------------------------------------------
def load_model(path: str | Path, lora: str | Path | list | None = None, dtype: str | None = "auto",
               device: str | None = "auto", tokenizer: str | Path | None = None, merge_lora: bool = False,
               quantize: str | None = None, attn: str | None = None, template: str | None = None):
    """Return ``(model, tokenizer)`` in eval mode on ``device``.

    ``lora`` is an adapter folder (or a list, applied in order: all but the last are merged) put on
    top of the base; ``merge_lora`` folds the last one in too, for faster inference.  The tokenizer
    is ``tokenizer``, else the last adapter's, else the model's; it must extend the model's own.
    ``quantize`` (8bit/4bit, bitsandbytes) and ``attn`` (attention kernel) are checked before any loading;
    so is ``template``, the chat template the model will be prompted with, against the tokenizer.
    """
    from ..templates import check_template_fits
    from .quantize import check_attn, check_quantize

    device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, device)
    check_quantize(quantize, device)
    check_attn(attn, device)
    src = model_source(path)
    adapters = [Path(a) for a in ([lora] if isinstance(lora, (str, Path)) else (lora or []))]
    for a in adapters:
        read_adapter_config(a)  # before any weights are read
    tok_src = str(tokenizer) if tokenizer else tokenizer_source(src, adapters)
    tok = load_tokenizer(tok_src)
    if template:
        check_template_fits(tok, template)
    if tok_src != src:
        base_tok = load_base_tokenizer(src)
        if base_tok is not None:
            check_tokenizer_extends_base(tok, base_tok, f"the tokenizer in {tok_src}", f"the model's tokenizer ({src})")
    model = load_causal_lm(src, torch_dtype, quantize=quantize, attn=attn, device=device)
    for i, adapter in enumerate(adapters):
        model = apply_adapter(model, adapter, merge=merge_lora or i < len(adapters) - 1)
    check_tokenizer_fits(len(tok), embedding_rows(model), f"the tokenizer in {tok_src}", str(src))
    if not quantize:  # a quantized model is placed on its device while loading and cannot be moved
        model.to(device)
    model.eval()
    return model, tok

"""The model-family registry: what zhllama knows per architecture, in one place.

A family says which Hugging Face classes build it, how ``model init`` configures a random one,
the GGUF architecture llama.cpp runs it as (with the extra tensors it carries and whether Q/K rows
are permuted to llama.cpp's RoPE layout), the LoRA target modules, the chat template a model of
the family is prompted with when nothing else says so, and the kind of tokenizer it ships with.
Adding a family is adding an entry to :data:`FAMILIES` (see docs/families.md); nothing else in
``model/``, ``export/`` or ``infer/`` branches on the architecture.

The template default rule is stated once, in :func:`resolve_template`: ``--template``, else the
folder's ``zhllama.json`` (adapter first, then model), else the family's default, else ``none``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ZhllamaError
from ..meta import recorded_template

PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "down_proj", "up_proj")


@dataclass(frozen=True)
class Family:
    name: str
    model_type: str  # config.json's model_type
    model_class: str  # transformers class (AutoModelForCausalLM picks it from model_type)
    config_class: str
    gguf_arch: str  # GGUF general.architecture (llama.cpp's LLM_ARCH name)
    description: str
    tokenizer_kind: str  # "sentencepiece" or "byte-level BPE" (what the family's bases ship)
    default_template: str = "none"
    # (token, template): the default when the vocabulary holds the token (Llama-3 vs Llama-1/2)
    template_by_token: tuple[tuple[str, str], ...] = ()
    lora_targets: tuple[str, ...] = PROJECTIONS
    gguf_permute_qk: bool = False  # llama.cpp's converter permutes Q/K rows for the llama architecture only
    gguf_extra_tensors: tuple[str, ...] = ()  # gguf.MODEL_TENSOR names beyond LLaMA's block (required)
    gguf_bias_tensors: tuple[str, ...] = ()  # gguf.MODEL_TENSOR names that also carry a ``.bias`` (required)
    init_options: dict = field(default_factory=dict)  # config fields model init sets for this family
    rope_types: tuple[str, ...] = ()  # RoPE scalings native to the family (beyond linear/ntk/yarn)
    architectures: tuple[str, ...] = ()  # other spellings of the class in old config.json files


FAMILIES: dict[str, Family] = {f.name: f for f in [
    Family("llama", "llama", "LlamaForCausalLM", "LlamaConfig", "llama",
           "LLaMA-1/2/3 and Chinese-LLaMA(-2/-3): RMSNorm, SwiGLU, RoPE (llama3 rope_type too), GQA",
           "sentencepiece (LLaMA-1/2) or byte-level BPE (Llama-3)",
           template_by_token=(("<|start_header_id|>", "llama3"),), gguf_permute_qk=True,
           init_options={"rms_norm_eps": 1e-5}, rope_types=("llama3",), architectures=("LLaMAForCausalLM",)),
    Family("qwen2", "qwen2", "Qwen2ForCausalLM", "Qwen2Config", "qwen2",
           "Qwen2 / Qwen2.5: the LLaMA block with biases on the q/k/v projections", "byte-level BPE",
           default_template="qwen", gguf_bias_tensors=("ATTN_Q", "ATTN_K", "ATTN_V"),
           init_options={"rms_norm_eps": 1e-6}),
    Family("qwen3", "qwen3", "Qwen3ForCausalLM", "Qwen3Config", "qwen3",
           "Qwen3 (dense): RMSNorm on the queries and keys of every head, no q/k/v bias", "byte-level BPE",
           default_template="qwen", gguf_extra_tensors=("ATTN_Q_NORM", "ATTN_K_NORM"),
           init_options={"rms_norm_eps": 1e-6}),
]}


def get_family(name: str) -> Family:
    """The family called ``name`` (``model init --family``)."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise ZhllamaError(f"unknown model family '{name}'", f"choose one of: {', '.join(FAMILIES)}") from None


def family_of_config(config: dict, where: str = "config.json") -> Family:
    """The family of a ``config.json`` (as a dict): by ``model_type``, else by ``architectures``."""
    model_type = config.get("model_type")
    archs = config.get("architectures") or []
    for fam in FAMILIES.values():
        if model_type == fam.model_type or (not model_type and archs and archs[0] in (fam.model_class, *fam.architectures)):
            return fam
    got = archs[0] if archs else model_type
    known = ", ".join(f"{f.name} ({f.model_class})" for f in FAMILIES.values())
    raise ZhllamaError(f"{where}: architecture {got!r} is not a model family zhllama knows",
                       f"zhllama works with {known}; see docs/families.md to add one")


def read_model_config(folder: str | Path) -> dict | None:
    """A local folder's config.json as a dict (None for a hub id or a folder without one)."""
    path = Path(folder) / "config.json"
    if not path.is_file():
        return None
    from ..io import read_json

    return read_json(path, "re-save the model folder")


def family_of_folder(folder: str | Path) -> Family | None:
    """The family of a local model folder, checked before any weights are read (None for a hub id or an
    adapter folder); an unknown architecture is a one-line error."""
    config = read_model_config(folder)
    if config is None:
        return None
    return family_of_config(config, f"{folder}/config.json")


def family_of_model(model) -> Family:
    """The family of a loaded transformers model (or a peft wrapper of one)."""
    config = getattr(model, "config", None)
    return family_of_config(config.to_dict() if config is not None else {}, type(model).__name__)


def vocabulary_tokens(folder: str | Path) -> set[str]:
    """The added/special tokens a tokenizer folder declares (tokenizer.json and tokenizer_config.json), read as JSON."""
    folder = Path(folder)
    tokens: set[str] = set()
    tj = folder / "tokenizer.json"
    if tj.is_file():
        tokens |= {t["content"] for t in json.loads(tj.read_text(encoding="utf-8")).get("added_tokens", [])}
    tc = folder / "tokenizer_config.json"
    if tc.is_file():
        decoder = json.loads(tc.read_text(encoding="utf-8")).get("added_tokens_decoder") or {}
        tokens |= {t["content"] for t in decoder.values() if isinstance(t, dict) and "content" in t}
    return tokens


def family_default_template(folder: str | Path) -> str | None:
    """The default template of a model folder's family (None when the family is not known from here)."""
    fam = family_of_folder(folder)
    if fam is None:
        return None
    if fam.template_by_token:
        tokens = vocabulary_tokens(folder)
        for token, template in fam.template_by_token:
            if token in tokens:
                return template
    return fam.default_template


def resolve_template(model_path, lora=None, template: str | None = None) -> str:
    """The template default rule, for every command: ``template`` (--template) if given, else the adapter's
    then the model's ``zhllama.json``, else the model family's default, else ``none``."""
    return template or recorded_template(model_path, lora) or family_default_template(model_path) or "none"


def lora_targets(model) -> list[str]:
    """The modules LoRA adapts in ``model``'s family (every attention and MLP projection)."""
    return list(family_of_model(model).lora_targets)

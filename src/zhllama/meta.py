"""``zhllama.json``: what zhllama recorded about a model or adapter folder it wrote.

Later stages and other tools read it instead of guessing: the chat template an SFT model was
trained with (chat, serve, eval and merge use it), the base model and stage that produced the
folder, and the vocabulary (tokenizer size, embedding rows, padding) that an adapter must be
loaded with.  One reader (:func:`read_meta`) and one writer (:func:`write_meta`);
:func:`recorded_template` is the chat template a model or adapter folder records.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .errors import ZhllamaError
from .rope_scaling import RopeScaling

META_FILE = "zhllama.json"
_HINT = "delete the file or fix it (it is rewritten by the stage that wrote the folder)"


@dataclass
class ModelMeta:
    """The fields of ``zhllama.json``; a field that was never written is None."""

    stage: str | None = None  # the stage that wrote the folder: resize, pt, sft, merged
    base_model: str | None = None  # the model it was trained, resized or merged from
    template: str | None = None  # the chat template an instruction-tuned model expects
    lora: bool | None = None  # True for a LoRA adapter folder
    loras: list[str] | None = None  # the adapters merged into it, in order
    tokenizer_size: int | None = None  # tokens of the tokenizer saved with it
    vocab_size: int | None = None  # embedding rows (tokenizer_size or more: padding rows included)
    pad_to_multiple_of: int | None = None  # embedding rows were padded to a multiple of this
    rope_scaling: RopeScaling | None = None  # an adapter trained with RoPE scaling (linear:4): applied to its base first
    extra: dict[str, Any] = field(default_factory=dict)  # keys this version does not know, kept as read

    def to_json(self) -> dict[str, Any]:
        known = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        if self.rope_scaling is not None:
            known["rope_scaling"] = str(self.rope_scaling)
        return {**self.extra, **{k: v for k, v in known.items() if v is not None}}

    @classmethod
    def from_json(cls, data: Any, where: str) -> "ModelMeta":
        if not isinstance(data, dict):
            raise ZhllamaError(f"{where}: expected a JSON object", _HINT)
        known = {f.name: f for f in fields(cls) if f.name != "extra"}
        for key, value in data.items():
            if key in known and value is not None:
                _check_type(key, value, where)
        values = {k: v for k, v in data.items() if k in known}
        if values.get("rope_scaling") is not None:  # parsed here, once: loading and eval take the value
            values["rope_scaling"] = RopeScaling.from_text(values["rope_scaling"], f"{where}: rope_scaling")
        return cls(**values, extra={k: v for k, v in data.items() if k not in known})


_TYPES = {"lora": bool, "loras": list, "tokenizer_size": int, "vocab_size": int, "pad_to_multiple_of": int}


def _check_type(key: str, value: Any, where: str) -> None:
    want = _TYPES.get(key, str)
    ok = isinstance(value, want) and not (want is int and isinstance(value, bool))
    if want is list:
        ok = ok and all(isinstance(v, str) for v in value)
    if not ok:
        raise ZhllamaError(f"{where}: '{key}' should be {'a list of strings' if want is list else want.__name__}, "
                           f"got {value!r}", _HINT)


def read_meta(folder: str | Path) -> ModelMeta:
    """The folder's ``zhllama.json`` (empty when it has none, e.g. a hub model or a foreign folder)."""
    from .io import read_json

    path = Path(folder) / META_FILE
    if not path.is_file():
        return ModelMeta()
    return ModelMeta.from_json(read_json(path, _HINT), str(path))


def write_meta(folder: str | Path, **updates: Any) -> ModelMeta:
    """Set ``updates`` in the folder's ``zhllama.json`` (other fields are kept); return the result."""
    from dataclasses import replace

    from .io import write_json_atomic

    path = Path(folder) / META_FILE
    meta = read_meta(folder)
    unknown = sorted(set(updates) - {f.name for f in fields(meta)})
    if unknown:
        raise TypeError(f"unknown zhllama.json field(s): {', '.join(unknown)}")
    meta = replace(meta, **updates)
    ModelMeta.from_json(meta.to_json(), str(path))  # the same checks as on reading
    write_json_atomic(path, meta.to_json())
    return meta


def recorded_template(model_path, lora=None) -> str | None:
    """The chat template the adapter's, else the model's ``zhllama.json`` records (None when neither does).

    This is the first half of the template default rule; ``zhllama.model.families.resolve_template``
    adds the model family's default.
    """
    for src in ([lora] if lora else []) + [model_path]:
        name = read_meta(src).template
        if name:
            return name
    return None

"""``RopeScaling``: a RoPE context extension as one typed value, parsed once where it enters.

It enters as text (``linear:2``, ``ntk:4``, ``yarn:4``) from a command-line flag or a recipe key
(:mod:`zhllama.config` calls :meth:`RopeScaling.from_text` for every field of this type) or from an
adapter's ``zhllama.json`` (:mod:`zhllama.meta`), and as a model config's ``rope_parameters``
(:meth:`RopeScaling.of_parameters`); everything after that (training, the engine, eval ppl and
passkey, adapters) takes the value.  Applying it to a model is :mod:`zhllama.model.rope`'s.  It lives
in the foundation because ``zhllama.json`` is read here.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ZhllamaError

ROPE_TYPES = {"linear": "linear", "ntk": "dynamic", "dynamic": "dynamic", "yarn": "yarn"}  # kind -> rope_type
SPEC_NAMES = {"linear": "linear", "dynamic": "ntk", "yarn": "yarn"}  # rope_type -> the kind a spec names


@dataclass(frozen=True)
class RopeScaling:
    """Linear (position interpolation), dynamic NTK or YaRN scaling by ``factor``; ``str()`` is its
    canonical text (``yarn:4``), what zhllama.json and reports record."""

    rope_type: str  # transformers' name: linear, dynamic or yarn
    factor: float

    @classmethod
    def from_text(cls, spec: str, where: str = "--rope-scaling", kinds: tuple[str, ...] = tuple(ROPE_TYPES)) -> RopeScaling:
        """``linear:2``, ``ntk:4`` (dynamic NTK), ``yarn:4``; ``where`` names the field in an error."""
        kind, _, factor = str(spec).partition(":")
        if kind.lower() not in kinds:
            raise unknown_kind(spec, kind, kinds, where)
        try:
            value = float(factor)
        except ValueError:
            raise ZhllamaError(f"{where} '{spec}': the factor must be a number", f"e.g. {kind}:2") from None
        if not value > 1.0 or value == float("inf"):
            raise ZhllamaError(f"{where} '{spec}': the factor must be above 1", f"e.g. {kind}:2 doubles the context")
        return cls(ROPE_TYPES[kind.lower()], value)

    @classmethod
    def of_parameters(cls, params: dict | None) -> RopeScaling | None:
        """The scaling a model config's ``rope_parameters`` (or older ``rope_scaling``) says; None when it is
        unscaled or of another kind (llama3, longrope: their context is already extended)."""
        params = params or {}
        rope_type = params.get("rope_type", params.get("type"))
        if rope_type not in SPEC_NAMES:
            return None
        return cls(rope_type, float(params.get("factor") or 1.0))

    @property
    def kind(self) -> str:
        return SPEC_NAMES[self.rope_type]

    def __str__(self) -> str:
        return f"{self.kind}:{self.factor:g}"

    def require(self, kinds: tuple[str, ...], where: str = "--rope-scaling") -> RopeScaling:
        """Refuse a kind not usable where it is given (training takes linear and yarn only); return self."""
        if self.kind not in kinds:
            raise unknown_kind(str(self), self.kind, kinds, where)
        return self


def unknown_kind(spec: str, kind: str, kinds: tuple[str, ...], where: str) -> ZhllamaError:
    return ZhllamaError(f"{where} '{spec}': unknown kind '{kind}'",
                        f"use {', '.join(k + ':F' for k in kinds if k != 'dynamic')}, e.g. {kinds[0]}:2")

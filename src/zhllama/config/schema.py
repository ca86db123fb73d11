"""Dataclass schemas from mappings and YAML: typed coercion, unknown keys with the nearest valid one,
declared ranges (:func:`option`), recipe sections of a stage's schema (:func:`section_of`) and
building a stage's config from layers of them (:func:`build`)."""

from __future__ import annotations

import dataclasses
import difflib
import math
import sys
import types
import typing
from pathlib import Path
from typing import Any, Callable, Literal, TypeVar

import yaml

from ..errors import ZhllamaError

T = TypeVar("T")


def _nearest(key: str, valid: list[str]) -> str | None:
    match = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
    return match[0] if match else None


def unknown_key_error(key: str, valid: list[str], where: str) -> ZhllamaError:
    near = _nearest(key, valid)
    hint = f"did you mean '{near}'?" if near else f"valid keys: {', '.join(sorted(valid))}"
    return ZhllamaError(f"{where}: unknown key '{key}'", hint)


def strip_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def parsed_from_text(tp: Any) -> bool:
    """A value type parsed from text where it enters (``RopeScaling``): a scalar option, not a section."""
    return isinstance(tp, type) and hasattr(tp, "from_text")


def coerce(value: Any, tp: Any, where: str) -> Any:
    tp, optional = strip_optional(tp)
    if value is None:
        if optional:
            return None
        raise ZhllamaError(f"{where}: must not be empty", "give a value or remove the key")
    if parsed_from_text(tp):
        return value if isinstance(value, tp) else tp.from_text(str(value), where)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            what = f" of {tp.__what__}" if hasattr(tp, "__what__") else ""
            raise ZhllamaError(f"{where}: expected a mapping{what}", f"write it as '{where.split('.')[-1]}:' with nested keys")
        return from_dict(tp, value, where)
    origin = typing.get_origin(tp)
    if origin in (list, tuple):
        (item_tp, *_) = typing.get_args(tp) or (Any,)
        if isinstance(value, (str, int, float)):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise ZhllamaError(f"{where}: expected a list", "write it as a YAML list")
        return [coerce(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ZhllamaError(f"{where}: expected a mapping", "write it as a YAML mapping")
        return dict(value)
    if origin is typing.Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            raise ZhllamaError(f"{where}: '{value}' is not one of {list(choices)}", "pick one of those")
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        raise ZhllamaError(f"{where}: expected true or false, got {value!r}", "write true or false")
    if tp in (int, float):
        if isinstance(value, bool):
            raise ZhllamaError(f"{where}: expected a number, got {value!r}", "write a number")
        try:
            out = tp(value)
        except (TypeError, ValueError):
            raise ZhllamaError(f"{where}: expected a number, got {value!r}", "write a number") from None
        if tp is int and isinstance(value, float) and value != out:
            raise ZhllamaError(f"{where}: expected a whole number, got {value!r}", "write an integer")
        return out
    if tp is str:
        if isinstance(value, (dict, list)):
            raise ZhllamaError(f"{where}: expected text, got a {type(value).__name__}", "write a single value")
        return str(value)
    if tp is Path:
        return Path(str(value))
    return value


def from_dict(cls: type[T], data: dict[str, Any], where: str = "config") -> T:
    """Build dataclass ``cls`` from ``data``; unknown keys raise with the nearest valid key."""
    if not isinstance(data, dict):
        raise ZhllamaError(f"{where}: expected a mapping, got {type(data).__name__}", "check the YAML structure")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs = {}
    for key, value in data.items():
        name = str(key).replace("-", "_")
        if name in getattr(cls, "__set_by_pipeline__", ()):
            raise ZhllamaError(f"{where}: '{key}' is set by the pipeline", "remove it from the recipe")
        if name not in fields:
            raise unknown_key_error(str(key), list(fields), where)
        kwargs[name] = coerce(value, hints[name], f"{where}.{name}")
    try:
        obj = cls(**kwargs)
    except TypeError as e:  # a required field is missing
        missing = [n for n, f in fields.items() if n not in kwargs and f.default is dataclasses.MISSING
                   and f.default_factory is dataclasses.MISSING]
        if missing:
            raise ZhllamaError(f"{where}: missing required key '{missing[0]}'", "add it to the recipe") from None
        raise ZhllamaError(f"{where}: {e}") from None
    except ValueError as e:  # __post_init__ validation
        raise ZhllamaError(f"{where}: {e}") from None
    check_ranges(obj, lambda field: f"{where}.{field}")
    return obj


def range_text(meta: Any) -> str:
    """The bounds of a field, as said in --help and in errors ("" when unbounded)."""
    low, high, positive = meta.get("low"), meta.get("high"), meta.get("positive")
    if positive:
        return "greater than 0"
    if low is not None and high is not None:
        return f"from {low:g} to {high:g}"
    if low is not None:
        return f"at least {low:g}"
    if high is not None:
        return f"at most {high:g}"
    return ""


def _out_of_range(value: Any, meta: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return "must be a finite number"
    low, high = meta.get("low"), meta.get("high")
    if (meta.get("positive") and value <= 0) or (low is not None and value < low) or (high is not None and value > high):
        return f"must be {range_text(meta)}"
    return None


def check_ranges(obj: Any, name: Callable[[str], str] = str) -> None:
    """Refuse a number outside its field's bounds (or not finite), naming the field as ``name(field)``.

    Called when a config is built from the command line (``--hidden-size``), a recipe
    (``recipe.yaml.base.hidden_size``) or by a stage's own check (Python API), so a bad value never
    reaches a library that would fail deep inside, or worse, succeed and write something unusable.
    """
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name, None)
        if dataclasses.is_dataclass(value) and not isinstance(value, type) and not parsed_from_text(type(value)):
            check_ranges(value, name)
            continue
        problem = _out_of_range(value, f.metadata)
        if problem:
            raise ZhllamaError(f"{name(f.name)} {value!r} is out of range: it {problem}", "fix the value")


def to_dict(obj: Any) -> Any:
    """Dataclass -> plain YAML/JSON-able structures (Paths and parsed values become their text)."""
    if parsed_from_text(type(obj)):
        return str(obj)
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, Path):
        return str(obj)
    return obj


class _Inherit:
    """The value of a recipe section's key that is not given (:func:`section_of`'s ``inherit``)."""

    def __repr__(self) -> str:
        return "INHERIT"


INHERIT: Any = _Inherit()


def section_of(cls: type, name: str, *, exclude: tuple[str, ...] = (), set_by_pipeline: tuple[str, ...] = (),
               inherit: tuple[str, ...] | bool = (), extra: tuple[tuple[str, Any, Any], ...] = (),
               what: str = "settings") -> type:
    """A pipeline recipe section's schema: the fields of stage schema ``cls`` (types, defaults, help, bounds).

    ``exclude``: fields the section does not have (an unknown key); ``set_by_pipeline``: fields the
    pipeline fills in (a key naming one is refused as such by :func:`from_dict`); ``inherit`` (names, or
    True for every field): fields that default to :data:`INHERIT`, "not given", so the value comes
    from what the section is laid over (:func:`build`: the recipe's template, the first phase's
    settings); ``extra``: more ``(name, type, default)`` fields of the section alone; ``what``: the
    section's contents, as an error says them ("expected a mapping of training settings").
    """
    hints = typing.get_type_hints(cls)
    skip = set(exclude) | set(set_by_pipeline)
    fields = []
    for f in dataclasses.fields(cls):
        if not f.init or f.name in skip:
            continue
        if inherit is True or f.name in inherit:
            spec = dataclasses.field(default=INHERIT, metadata=f.metadata)
        else:
            spec = dataclasses.field(default=f.default, default_factory=f.default_factory, metadata=f.metadata)
        fields.append((f.name, hints[f.name], spec))
    fields += [(n, tp, dataclasses.field(default=d)) for n, tp, d in extra]
    section = dataclasses.make_dataclass(name, fields, kw_only=True)
    section.__module__ = sys._getframe(1).f_globals["__name__"]  # the module that defines it (as Python 3.12 does)
    section.__set_by_pipeline__ = tuple(set_by_pipeline)
    section.__what__ = what
    return section


def given(section: Any) -> dict[str, Any]:
    """The fields of a dataclass that are set (not :data:`INHERIT`)."""
    return {f.name: getattr(section, f.name) for f in dataclasses.fields(section) if getattr(section, f.name) is not INHERIT}


def build(cls: type[T], *layers: Any, **filled: Any) -> T:
    """Stage schema ``cls`` from recipe sections (or other configs) laid over its defaults in order,
    then ``filled`` (what the pipeline sets): the one step from a recipe section to a stage's config.
    A layer's fields that ``cls`` does not have (a section's own, like ``sft.then``) are left out."""
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    values: dict[str, Any] = {}
    for layer in layers:
        values.update({k: v for k, v in given(layer).items() if k in names})
    return cls(**{**values, **filled})


def read_yaml(path: str | Path) -> dict[str, Any]:
    from ..checks import read_text

    p = Path(path)
    if not p.is_file():
        raise ZhllamaError(f"recipe not found: {p}", "check the path")
    try:
        data = yaml.safe_load(read_text(p, what="recipe"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark else ""
        raise ZhllamaError(f"{p}:{line} is not valid YAML: {getattr(e, 'problem', e)}", "fix the syntax") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ZhllamaError(f"{p}: the top level must be a mapping of keys", "see recipes/ for examples")
    return data


def load_yaml(path: str | Path, cls: type[T]) -> T:
    return from_dict(cls, read_yaml(path), where=str(path))


def option(help: str, default: Any = dataclasses.MISSING, *, factory: Any = dataclasses.MISSING,
           flags: tuple[str, ...] = (), metavar: str | None = None, positional: bool = False,
           repeat: Literal["nargs", "append"] = "nargs", choices: Any = None, cli: bool = True,
           low: float | None = None, high: float | None = None, positive: bool = False) -> Any:
    """A dataclass field with its help text and command-line shape.

    A field without a default (and without ``factory``) is a required option.  ``flags`` replaces the
    generated ``--field-name`` (e.g. an alias); a bool field is a ``--flag`` when it defaults to
    False and ``--no-flag`` when it defaults to True; a list field takes several values after one
    flag (``repeat="nargs"``) or the flag repeated (``"append"``); a ``Literal`` type gives the
    choices.  ``cli=False`` keeps a field out of the command line (recipe and Python only).
    ``low``/``high`` (inclusive) and ``positive`` (> 0) bound a number; :func:`check_ranges` enforces
    them whenever a config is built, before any work, and ``--help`` shows them.
    """
    meta = {"help": help, "flags": tuple(flags), "metavar": metavar, "positional": positional, "repeat": repeat,
            "choices": choices, "cli": cli, "low": low, "high": high, "positive": positive}
    return dataclasses.field(default=default, default_factory=factory, metadata=meta)

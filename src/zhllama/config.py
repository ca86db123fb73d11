"""Typed configuration: dataclasses that YAML recipes and CLI flags map onto.

Stages define their own dataclasses (e.g. ``zhllama.train.config.TrainConfig``); this module holds
the shared machinery:

* :func:`from_dict` builds a dataclass from a mapping, recursing into nested dataclasses, checking
  types, and rejecting unknown keys with the nearest valid key as a hint;
* :func:`load_yaml` reads a YAML file into a dataclass;
* :func:`add_dataclass_args` / :func:`apply_cli_overrides` expose every field as a ``--flag`` so a
  recipe value can be overridden on the command line.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from .errors import ZhllamaError

T = TypeVar("T")


def _nearest(key: str, valid: list[str]) -> str | None:
    match = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
    return match[0] if match else None


def unknown_key_error(key: str, valid: list[str], where: str) -> ZhllamaError:
    near = _nearest(key, valid)
    hint = f"did you mean '{near}'?" if near else f"valid keys: {', '.join(sorted(valid))}"
    return ZhllamaError(f"{where}: unknown key '{key}'", hint)


def _strip_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def _coerce(value: Any, tp: Any, where: str) -> Any:
    tp, optional = _strip_optional(tp)
    if value is None:
        if optional:
            return None
        raise ZhllamaError(f"{where}: must not be empty", "give a value or remove the key")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ZhllamaError(f"{where}: expected a mapping", f"write it as '{where.split('.')[-1]}:' with nested keys")
        return from_dict(tp, value, where)
    origin = typing.get_origin(tp)
    if origin in (list, tuple):
        (item_tp, *_) = typing.get_args(tp) or (Any,)
        if isinstance(value, (str, int, float)):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise ZhllamaError(f"{where}: expected a list", "write it as a YAML list")
        return [_coerce(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
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
        if name not in fields:
            raise unknown_key_error(str(key), list(fields), where)
        kwargs[name] = _coerce(value, hints[name], f"{where}.{name}")
    try:
        return cls(**kwargs)
    except TypeError as e:  # a required field is missing
        missing = [n for n, f in fields.items() if n not in kwargs and f.default is dataclasses.MISSING
                   and f.default_factory is dataclasses.MISSING]
        if missing:
            raise ZhllamaError(f"{where}: missing required key '{missing[0]}'", "add it to the recipe") from None
        raise ZhllamaError(f"{where}: {e}") from None
    except ValueError as e:  # __post_init__ validation
        raise ZhllamaError(f"{where}: {e}") from None


def to_dict(obj: Any) -> Any:
    """Dataclass -> plain YAML/JSON-able structures (Paths become strings)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, Path):
        return str(obj)
    return obj


def read_yaml(path: str | Path) -> dict[str, Any]:
    from .checks import read_text

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


def add_dataclass_args(parser: argparse.ArgumentParser, cls: type, prefix: str = "") -> None:
    """Add a ``--flag`` for every scalar or list field of ``cls`` (default None = not given)."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp, _ = _strip_optional(hints[f.name])
        flag = "--" + (prefix + f.name).replace("_", "-")
        doc = f.metadata.get("help", "")
        if dataclasses.is_dataclass(tp) or typing.get_origin(tp) is dict:
            continue
        if tp is bool:
            parser.add_argument(flag, dest=prefix + f.name, default=None,
                                action=argparse.BooleanOptionalAction, help=doc)
        elif typing.get_origin(tp) in (list, tuple):
            parser.add_argument(flag, dest=prefix + f.name, default=None, nargs="+", help=doc)
        else:
            parser.add_argument(flag, dest=prefix + f.name, default=None, help=doc)


def apply_cli_overrides(cfg: T, args: argparse.Namespace, prefix: str = "") -> T:
    """Return a copy of ``cfg`` with every field that was given on the command line replaced."""
    hints = typing.get_type_hints(type(cfg))
    changes = {}
    for f in dataclasses.fields(cfg):
        value = getattr(args, prefix + f.name, None)
        if value is not None:
            changes[f.name] = _coerce(value, hints[f.name], f"--{f.name.replace('_', '-')}")
    return dataclasses.replace(cfg, **changes) if changes else cfg

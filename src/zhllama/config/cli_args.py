"""A dataclass schema as argparse options (:func:`add_dataclass_args`) and back (:func:`from_args`),
with every field an optional override of a recipe's value (:func:`apply_cli_overrides`)."""

from __future__ import annotations

import argparse
import dataclasses
import typing
from typing import Any

from ..errors import ZhllamaError
from .schema import T, coerce, parsed_from_text, strip_optional, check_ranges, range_text

@dataclasses.dataclass
class _Option:
    """One command-line option generated from a (possibly nested) dataclass field."""

    dest: str
    field: dataclasses.Field
    tp: Any  # the field's type, Optional stripped
    default: Any

    @property
    def meta(self):
        return self.field.metadata

    @property
    def required(self) -> bool:
        return self.default is dataclasses.MISSING


def _field_default(f: dataclasses.Field, parent: Any) -> Any:
    if parent is not None:
        return getattr(parent, f.name)
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


def _options(cls: type, prefix: str = "", parent: Any = None, flatten: bool = True) -> list[_Option]:
    """The fields of ``cls`` that become options; nested dataclass fields are flattened (their
    defaults taken from the outer field's default instance, so a stage can change them)."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        tp, _ = strip_optional(hints[f.name])
        if not f.init or not f.metadata.get("cli", True):
            continue
        default = _field_default(f, parent)
        if dataclasses.is_dataclass(tp) and not parsed_from_text(tp):
            if flatten:
                out += _options(tp, prefix, default if default is not dataclasses.MISSING else None, flatten)
        elif typing.get_origin(tp) is not dict:
            out.append(_Option(prefix + f.name, f, tp, default))
    return out


def _default_text(opt: _Option) -> str:
    d, help_text = opt.default, opt.meta.get("help", "")
    if d is None or isinstance(d, bool) or d == [] or d == () or opt.required or "default" in help_text.lower():
        return ""
    shown = " ".join(map(str, d)) if isinstance(d, (list, tuple)) else str(d)
    return f" (default: {shown})"


def _scalar_kwargs(tp: Any, meta: Any) -> dict:
    """``type`` and ``choices`` for a scalar (or a list item) of type ``tp``."""
    kwargs: dict[str, Any] = {}
    if typing.get_origin(tp) is typing.Literal:
        values = typing.get_args(tp)
        kwargs.update(choices=list(values), type=type(values[0]))
    elif tp in (int, float):
        kwargs["type"] = tp
    if meta.get("choices") is not None:
        kwargs["choices"] = meta["choices"]
    return kwargs


def _help_text(opt: _Option) -> str:
    bounds = range_text(opt.meta)
    text = opt.meta.get("help", "") + (f"; {bounds}" if bounds else "") + _default_text(opt)
    return text.replace("%", "%%")  # argparse %-formats help


def _add_override(parser: argparse.ArgumentParser, opt: _Option) -> None:
    """An optional flag defaulting to None: "not given, keep the recipe's value"."""
    flags = list(opt.meta.get("flags") or ["--" + opt.dest.replace("_", "-")])
    if opt.tp is bool:
        parser.add_argument(*flags, dest=opt.dest, default=None, action=argparse.BooleanOptionalAction,
                            help=_help_text(opt))
        return
    many = typing.get_origin(opt.tp) in (list, tuple)
    parser.add_argument(*flags, dest=opt.dest, default=None, nargs="+" if many else None,
                        metavar=opt.meta.get("metavar"), help=_help_text(opt))


def _add_stage_option(parser: argparse.ArgumentParser, opt: _Option) -> None:
    """The option with its default (or required), type, choices and list shape."""
    meta, name = opt.meta, opt.field.name.replace("_", "-")
    flags = list(meta.get("flags") or [f"--{name}"])
    kwargs: dict[str, Any] = {"help": _help_text(opt)}
    if meta.get("metavar"):
        kwargs["metavar"] = meta["metavar"]
    if opt.tp is bool:
        if opt.default is True:  # the flag turns it off
            flags = list(meta.get("flags") or [f"--no-{name}"])
        kwargs["action"] = "store_false" if opt.default is True else "store_true"
    elif typing.get_origin(opt.tp) in (list, tuple):
        kwargs.update(_scalar_kwargs((typing.get_args(opt.tp) or (str,))[0], meta))
        if meta.get("repeat") == "append":
            kwargs["action"] = "append"
        else:
            kwargs["nargs"] = "+"
    else:
        kwargs.update(_scalar_kwargs(opt.tp, meta))
    if meta.get("positional"):
        parser.add_argument(opt.dest, **kwargs)
    elif opt.required:
        parser.add_argument(*flags, dest=opt.dest, required=True, **kwargs)
    else:
        default = list(opt.default) if isinstance(opt.default, tuple) else opt.default
        parser.add_argument(*flags, dest=opt.dest, default=default, **kwargs)


def add_dataclass_args(parser: argparse.ArgumentParser, cls: type, prefix: str = "", overrides: bool = True) -> None:
    """Add an option for every field of ``cls`` (dict fields skipped).

    ``overrides=True``: each scalar or list field is an optional ``--flag`` defaulting to None
    (``--x/--no-x`` for bools), to lay over a recipe with :func:`apply_cli_overrides`.  ``overrides=False``: the
    command's own options, with the field's default, required-ness, type, choices and list shape,
    nested dataclasses flattened; build the dataclass back with :func:`from_args`.
    """
    options = _options(cls, prefix, flatten=not overrides)
    if not overrides:  # required options first in --help (inherited fields come first in a dataclass)
        options.sort(key=lambda o: not o.required)
    dests = [o.dest for o in options]
    clash = {d for d in dests if dests.count(d) > 1}
    if clash:
        raise TypeError(f"{cls.__name__}: option names used twice: {sorted(clash)}")
    for opt in options:
        (_add_override if overrides else _add_stage_option)(parser, opt)


def from_args(cls: type[T], args: argparse.Namespace, prefix: str = "") -> T:
    """Build ``cls`` (with nested dataclasses) from a namespace made by ``add_dataclass_args(overrides=False)``."""
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        tp, _ = strip_optional(hints[f.name])
        if not f.init:
            continue
        if dataclasses.is_dataclass(tp) and not parsed_from_text(tp):
            kwargs[f.name] = from_args(tp, args, prefix)
        elif hasattr(args, prefix + f.name):
            value = getattr(args, prefix + f.name)
            if value is not None and parsed_from_text(tp):
                value = coerce(value, tp, (f.metadata.get("flags") or (flag_name(f.name),))[0])
            kwargs[f.name] = tuple(value) if typing.get_origin(tp) is tuple and value is not None else value
    try:
        obj = cls(**kwargs)
    except ValueError as e:  # __post_init__ validation
        raise ZhllamaError(str(e)) from None
    check_ranges(obj, flag_name)
    return obj


def flag_name(field: str) -> str:
    return "--" + field.replace("_", "-")


def apply_cli_overrides(cfg: T, args: argparse.Namespace, prefix: str = "") -> T:
    """Return a copy of ``cfg`` with every field that was given on the command line replaced."""
    hints = typing.get_type_hints(type(cfg))
    changes = {}
    for f in dataclasses.fields(cfg):
        value = getattr(args, prefix + f.name, None)
        if value is not None:
            changes[f.name] = coerce(value, hints[f.name], f"--{f.name.replace('_', '-')}")
    cfg = dataclasses.replace(cfg, **changes) if changes else cfg
    check_ranges(cfg, flag_name)
    return cfg

"""Typed configuration: one dataclass per stage is at once its CLI options, recipe section and Python argument.

Stages define their own dataclasses (``zhllama.model.init.InitConfig``, ``zhllama.train.config.TrainConfig``,
...), each field declared with :func:`option` (help text, default, and how it appears on the command
line); this module holds the shared machinery:

* :func:`from_dict` builds a dataclass from a mapping, recursing into nested dataclasses, checking
  types, and rejecting unknown keys with the nearest valid key as a hint;
* :func:`load_yaml` reads a YAML file into a dataclass;
* :func:`add_dataclass_args` generates a stage's argparse options from its dataclass and
  :func:`from_args` builds the dataclass back from the parsed namespace; with ``overrides=True``
  every field is an optional ``--flag`` whose value replaces a recipe's (:func:`apply_cli_overrides`);
* :func:`section_of` is a stage's schema as a pipeline recipe section (minus the fields the pipeline
  fills in), and :func:`build` makes the stage's config from a section in one step.

The schemas, by command (a pipeline recipe section reuses the settings part of its stage's)::

    tokenizer train|merge|stats  tokenizer.train.TokenizerTrainConfig, tokenizer.merge.TokenizerMergeConfig,
                                 tokenizer.stats.TokenizerStatsConfig
    model init|resize            model.init.InitConfig (ModelShape = recipe base:),
                                 model.resize.ResizeConfig (ResizeSettings = recipe resize:)
    train pt|sft, merge          train.config.TrainConfig (recipe pt:/sft:), MergeConfig (MergeSettings = merge:)
    train rm|dpo|ppo|orpo        align.TRAINERS[name].schema (align/rm.py ... orpo.py; recipe rm:/dpo:/ppo:/orpo:)
    chat, generate               infer.config.ChatConfig, GenerateConfig (EngineConfig + infer.sampling.SamplingParams)
    serve, webui                 serve.config.ServeConfig, WebuiConfig
    eval ppl|mc|compare|...      eval.registry.EVAL_TASKS[name].schema (eval.config.PplConfig, McConfig, ...)
    export gguf                  export.config.GgufConfig (GgufSettings = recipe export:)

Why argparse and not jsonargparse or tyro: ``zhllama --help`` must stay instant, and the stage
modules import torch lazily, which a generator over plain dataclasses keeps; errors keep the
project's one-line ``zhllama: error:`` shape (argparse is only the parser here; validation raises
``ZhllamaError``); and it adds no dependency.  What those libraries would add (options from
dataclass fields, help from field docs, nested sections) is the hundred lines below.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import math
import sys
import types
import typing
from pathlib import Path
from typing import Any, Callable, Literal, TypeVar

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


def _parsed(tp: Any) -> bool:
    """A value type parsed from text where it enters (``RopeScaling``): a scalar option, not a section."""
    return isinstance(tp, type) and hasattr(tp, "from_text")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    tp, optional = _strip_optional(tp)
    if value is None:
        if optional:
            return None
        raise ZhllamaError(f"{where}: must not be empty", "give a value or remove the key")
    if _parsed(tp):
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
        if name in getattr(cls, "__set_by_pipeline__", ()):
            raise ZhllamaError(f"{where}: '{key}' is set by the pipeline", "remove it from the recipe")
        if name not in fields:
            raise unknown_key_error(str(key), list(fields), where)
        kwargs[name] = _coerce(value, hints[name], f"{where}.{name}")
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
        if dataclasses.is_dataclass(value) and not isinstance(value, type) and not _parsed(type(value)):
            check_ranges(value, name)
            continue
        problem = _out_of_range(value, f.metadata)
        if problem:
            raise ZhllamaError(f"{name(f.name)} {value!r} is out of range: it {problem}", "fix the value")


def to_dict(obj: Any) -> Any:
    """Dataclass -> plain YAML/JSON-able structures (Paths and parsed values become their text)."""
    if _parsed(type(obj)):
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
        tp, _ = _strip_optional(hints[f.name])
        if not f.init or not f.metadata.get("cli", True):
            continue
        default = _field_default(f, parent)
        if dataclasses.is_dataclass(tp) and not _parsed(tp):
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
        tp, _ = _strip_optional(hints[f.name])
        if not f.init:
            continue
        if dataclasses.is_dataclass(tp) and not _parsed(tp):
            kwargs[f.name] = from_args(tp, args, prefix)
        elif hasattr(args, prefix + f.name):
            value = getattr(args, prefix + f.name)
            if value is not None and _parsed(tp):
                value = _coerce(value, tp, (f.metadata.get("flags") or (flag_name(f.name),))[0])
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
            changes[f.name] = _coerce(value, hints[f.name], f"--{f.name.replace('_', '-')}")
    cfg = dataclasses.replace(cfg, **changes) if changes else cfg
    check_ranges(cfg, flag_name)
    return cfg

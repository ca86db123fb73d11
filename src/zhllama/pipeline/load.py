"""Reading a recipe: the YAML file (or a shipped recipe by name) parsed into a :class:`~.recipe.Recipe`,
every section checked against its stage's schema, and the stage list checked against the registry
(names, order, what each stage needs)."""

from __future__ import annotations

from pathlib import Path

import yaml

from ..config import from_dict, read_yaml, unknown_key_error
from ..errors import ZhllamaError
from .recipe import Recipe
from .registry import STAGES
from .shipped import is_shipped, shipped_recipe_text


def parse_recipe(data: dict, where: str = "recipe", root: Path | None = None) -> Recipe:
    """A :class:`Recipe` from a mapping, with the structural checks (no files touched)."""
    if not isinstance(data, dict):
        raise ZhllamaError(f"{where}: expected a mapping of keys", "see the shipped ones: zhllama pipeline --list-recipes")
    # `merge:` with nothing under it means "run it with the defaults"
    data = {k: ({} if v is None and k in STAGES else v) for k, v in data.items()}
    recipe = from_dict(Recipe, data, where)
    recipe.root = (root or Path(".")).resolve()
    check_stage_list(recipe, where)
    return recipe


def load_recipe(path: str | Path) -> Recipe:
    """A recipe from a YAML file, or a shipped recipe by name (``chinese-llama2-7b``).

    Relative paths in a file are relative to its folder; in a shipped recipe, to the current one.
    """
    p = Path(path)
    if not p.is_file() and p.parent == Path("."):
        return load_shipped_recipe(p.name)
    return parse_recipe(read_yaml(p), where=str(p), root=Path.cwd() if is_shipped(p) else p.parent)


def load_shipped_recipe(name: str) -> Recipe:
    """A recipe that ships with zhllama (``zhllama pipeline --list-recipes``), paths relative to the current folder."""
    name = name.removesuffix(".yaml")
    return parse_recipe(yaml.safe_load(shipped_recipe_text(name)), where=f"recipe {name}", root=Path.cwd())


def check_stage_list(recipe: Recipe, where: str) -> None:
    """Stage names known, in pipeline order, each with a section and with what it needs."""
    order = list(STAGES)
    names = recipe.enabled()
    if not names:
        raise ZhllamaError(f"{where}: no stages to run (the recipe has no stage sections)",
                           f"add sections for the stages to run ({', '.join(order)}); see zhllama pipeline --list-recipes")
    for i, name in enumerate(names):
        if name not in STAGES:
            raise unknown_key_error(name, order, f"{where}: stages[{i}]")
        if getattr(recipe, name) is None and not STAGES[name].default_section:
            raise ZhllamaError(f"{where}: stage '{name}' is listed but the recipe has no '{name}:' section",
                               f"add a '{name}:' section or remove it from stages")
    for a, b in zip(names, names[1:]):
        if order.index(a) >= order.index(b):
            raise ZhllamaError(f"{where}: stages in an impossible order: '{b}' cannot run after '{a}'",
                               f"the order is {' -> '.join(order)}")
    if recipe.base is not None and recipe.base_model:
        raise ZhllamaError(f"{where}: both 'base_model' and a 'base:' section", "give one: a model to start from, or how to build one")
    for name in names:
        needs = STAGES[name].needs
        if needs and not any(stage in names[: names.index(name)] or (key and getattr(recipe, key)) for stage, key in needs):
            options = " or ".join(f"the '{s}' stage" + (f" or '{k}'" if k else "") for s, k in needs)
            raise ZhllamaError(f"{where}: stage '{name}' has nothing to work on", f"it needs {options} before it")

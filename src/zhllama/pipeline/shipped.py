"""The recipes that ship inside the package (``zhllama/recipes/``): listed, found by name, read.

They are package data, so an installed wheel has them too (read through
:mod:`importlib.resources`); in a clone, ``recipes/`` at the top of the repository points at the
same folder.  A shipped recipe's relative paths (``data/...``, ``run_dir``) are relative to the
folder it is run from, since its own folder may be inside site-packages.  Each recipe's first
comment line is its one-line description.
"""

from __future__ import annotations

import difflib
from importlib.resources import files
from pathlib import Path

from ..errors import ZhllamaError

TRAINING_CONFIGS = "train"  # sub-folder of configs for `zhllama train --config`


def recipes_folder():
    """The shipped recipes folder (a :class:`importlib.resources.abc.Traversable`)."""
    return files("zhllama") / "recipes"


def _yaml_files(folder) -> dict[str, object]:
    return {f.name.removesuffix(".yaml"): f for f in sorted(folder.iterdir(), key=lambda f: f.name)
            if f.name.endswith(".yaml")}


def recipe_names() -> list[str]:
    """Names of the shipped pipeline recipes (``zhllama pipeline NAME``)."""
    return list(_yaml_files(recipes_folder()))


def describe(text: str) -> str:
    """A recipe's one-line description: its first comment line."""
    for line in text.splitlines():
        if line.startswith("#"):
            return line.lstrip("#").strip()
    return ""


def _listing(folder) -> list[tuple[str, str]]:
    return [(name, describe(f.read_text(encoding="utf-8"))) for name, f in _yaml_files(folder).items()]


def recipe_listing() -> list[tuple[str, str]]:
    """(name, description) of every shipped pipeline recipe."""
    return _listing(recipes_folder())


def training_config_listing() -> list[tuple[str, str]]:
    """(name, description) of every shipped training config (``train/NAME.yaml``, for ``zhllama train --config``)."""
    return _listing(recipes_folder() / TRAINING_CONFIGS)


def shipped_recipe_text(name: str) -> str:
    """The YAML text of a shipped pipeline recipe, by name (``demo`` or ``demo.yaml``)."""
    name = name.removesuffix(".yaml")
    found = _yaml_files(recipes_folder()).get(name)
    if found is None:
        near = difflib.get_close_matches(name, recipe_names(), n=1, cutoff=0.5)
        raise ZhllamaError(f"no recipe file or shipped recipe called '{name}'",
                           (f"did you mean '{near[0]}'? " if near else "")
                           + f"shipped recipes: {', '.join(recipe_names())} (zhllama pipeline --list-recipes)")
    return found.read_text(encoding="utf-8")


def is_shipped(path: str | Path) -> bool:
    """Whether ``path`` is one of the shipped recipe files (also through the clone's ``recipes/`` link)."""
    folder = recipes_folder()
    if not isinstance(folder, Path):  # zipped package: nothing on disk can be one of its files
        return False
    return Path(path).resolve().parent == folder.resolve()

"""``EvalTask``: one ``zhllama eval NAME`` (a registry entry of :mod:`.registry`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class EvalTask:
    """One evaluation: ``schema`` (a dataclass: its command-line options and Python argument),
    ``run(config) -> exit code`` (prints its result, writes its files), ``help`` (its line in
    ``zhllama eval --help``) and ``description`` (its own ``--help`` text)."""

    name: str
    schema: type
    run: Callable[[Any], int]
    help: str
    description: str

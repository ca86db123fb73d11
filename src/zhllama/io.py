"""Atomic writes: nothing already written is lost or left half-written."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_file(path: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temp path beside ``path`` to write; it replaces ``path`` only when the block succeeds.

    On failure the temp file is removed and an existing ``path`` is left as it was.
    """
    from .checks import check_output_path, sweep_stale_temps, temp_prefix

    path = check_output_path(path, "file")
    sweep_stale_temps(path)  # what a killed earlier write left behind
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=temp_prefix(path), suffix=suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file ordinary permissions
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to a temp file beside ``path``, then rename it over ``path``."""
    with atomic_file(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path: str | Path, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, ensure_ascii=False, indent=2) + "\n")


@contextlib.contextmanager
def atomic_dir(out: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Build a folder in a temp sibling and move it into place only when the block succeeds.

    An interrupted stage therefore never leaves a folder that looks complete but is not.
    ``overwrite`` replaces an existing folder (after the new one is complete).
    """
    from .checks import check_output_dir, sweep_stale_temps, temp_prefix

    out = check_output_dir(out, overwrite)  # also refuses a path under a file (checks.check_output_path)
    sweep_stale_temps(out)  # what a killed earlier run left behind
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=temp_prefix(out), suffix=".partial"))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; the finished folder should be readable
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out.exists():
        old = out.with_name(f".{out.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)


def read_json(path: str | Path, hint: str) -> Any:
    """Parse a JSON file; a malformed one is a one-line error naming the file and line, with ``hint``."""
    from .errors import ZhllamaError

    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ZhllamaError(f"{path}:{e.lineno}: not valid JSON ({e.msg})", hint) from None
    except UnicodeDecodeError as e:
        raise ZhllamaError(f"{path}: not valid JSON (not UTF-8 at byte {e.start})", hint) from None

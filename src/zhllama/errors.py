"""The one way user-facing errors are raised.

Every stage raises :class:`ZhllamaError` for problems a user can fix (a missing file, a bad
field, a mismatch between two stages).  The CLI turns it into a one-line message on stderr and
exit code 2, instead of a stack trace from deep inside a library.
"""

from __future__ import annotations

from pathlib import Path


class ZhllamaError(Exception):
    """A problem with the user's input, with a hint that says what to do about it."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


def require_file(path: str | Path, what: str = "file") -> Path:
    """Return ``path`` as a Path, or raise a clear error when it is not an existing file."""
    p = Path(path)
    if not p.exists():
        raise ZhllamaError(f"{what} not found: {p}", "check the path")
    if not p.is_file():
        raise ZhllamaError(f"{what} is not a file: {p}", "give a file, not a folder")
    return p


def require_dir(path: str | Path, what: str = "folder") -> Path:
    p = Path(path)
    if not p.exists():
        raise ZhllamaError(f"{what} not found: {p}", "check the path")
    if not p.is_dir():
        raise ZhllamaError(f"{what} is not a folder: {p}", "give a folder")
    return p


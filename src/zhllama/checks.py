"""Checks every command runs on its paths before any work: one-line errors, nothing left behind.

* :func:`check_output_path` — the place an output goes can be written: no parent is a regular
  file, the nearest existing parent is a writable folder, and the output itself is not the wrong
  kind (a folder where a file goes, or the reverse);
* :func:`check_weights_readable` — every weights file of a model folder opens (a truncated
  ``model.safetensors`` is named, instead of safetensors' "incomplete metadata" deep in a load);
* :func:`read_text` — a text input decodes, or the error names the file, the byte offset and the
  encoding to try (GBK is common in Chinese corpora);
* :func:`check_port_free` — a server's port can be bound (instead of uvicorn's multi-line error);
* :func:`sweep_stale_temps` — temp files and folders that a killed run left beside an output
  (``.NAME.<pid>.*``) are removed when their process is gone.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Literal

from .errors import ZhllamaError


def _nearest_existing(path: Path) -> Path:
    for parent in path.parents:
        if parent.exists():
            return parent
    return Path(path.anchor or ".")


def check_output_path(path: str | Path, kind: Literal["file", "folder"], what: str = "output") -> Path:
    """Return ``path`` if an output of ``kind`` can be written there, else raise a one-line error.

    Whether an existing output may be replaced is the caller's rule (``--overwrite``, resuming);
    this only refuses what can never work.
    """
    p = Path(path).expanduser()
    if p.exists():
        if kind == "file" and p.is_dir():
            raise ZhllamaError(f"{what} {p} is a folder", "give a file name (e.g. a path inside that folder)")
        if kind == "folder" and not p.is_dir():
            raise ZhllamaError(f"{what} {p} is a file, not a folder", "choose another path or remove the file")
    base = _nearest_existing(p)
    if not base.is_dir():
        raise ZhllamaError(f"cannot write {what} {p}: {base} is a file, not a folder",
                           "choose an output path whose parents are folders")
    if not os.access(base, os.W_OK | os.X_OK):
        raise ZhllamaError(f"cannot write {what} {p}: no permission to write in {base}",
                           "choose a folder you can write to")
    return p


def check_output_dir(path: str | Path, overwrite: bool = False) -> Path:
    """Refuse to write into an existing, non-empty output folder unless ``overwrite``."""
    p = check_output_path(path, "folder")
    if p.exists() and any(p.iterdir()) and not overwrite:
        raise ZhllamaError(f"output folder already exists: {p}", "pass --overwrite or choose another --out")
    return p


def is_hub_id(path: str | Path, root: str | Path | None = None) -> bool:
    """``meta-llama/Llama-2-7b-hf``: one slash, not path-like, and not a path that exists here (or under ``root``)."""
    text = str(path)
    if text.count("/") != 1 or text.startswith((".", "/", "~")) or Path(text).exists():
        return False
    return root is None or not (Path(root) / text).exists()


def is_local(path: str | Path) -> bool:
    return not is_hub_id(path)


WEIGHT_GLOBS = ("*.safetensors", "*.bin")


def check_weights_readable(folder: str | Path) -> None:
    """Open the header of every weights file in ``folder``; a damaged one is named."""
    folder = Path(folder)
    for f in sorted(p for g in WEIGHT_GLOBS for p in folder.glob(g) if p.is_file()):
        problem = _safetensors_problem(f) if f.suffix == ".safetensors" else _torch_bin_problem(f)
        if problem:
            raise ZhllamaError(f"{f} is damaged: {problem}",
                               "it is truncated or not a weights file: re-run the stage that wrote it, or copy it again")


def _safetensors_problem(f: Path) -> str | None:
    from safetensors import safe_open

    try:
        with safe_open(str(f), framework="pt") as st:
            st.keys()
    except Exception as e:  # SafetensorError, OSError: the message is one line naming the problem
        return str(e).splitlines()[0] if str(e) else type(e).__name__
    return None


def _torch_bin_problem(f: Path) -> str | None:
    import zipfile

    if f.name.startswith(("pytorch_model", "adapter_model", "training_args")) and not zipfile.is_zipfile(f):
        return "not a complete PyTorch checkpoint (zip archive)"
    return None


def read_text(path: str | Path, encoding: str = "utf-8", what: str = "input") -> str:
    """The text of ``path``; a decode error names the byte and what to do about it."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except IsADirectoryError:
        raise ZhllamaError(f"{what} {p} is a folder", "give a text file") from None
    except FileNotFoundError:
        raise ZhllamaError(f"{what} not found: {p}", "check the path") from None
    try:
        return data.decode(encoding)
    except LookupError:
        raise ZhllamaError(f"unknown text encoding '{encoding}'", "use utf-8, gbk, gb18030, big5, ...") from None
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        bad = data[e.start:e.start + 4]
        other = "gb18030" if encoding.lower().replace("-", "") in ("utf8", "utf8sig") else "utf-8"
        raise ZhllamaError(f"{p}:{line}: not {encoding} text (byte {e.start}: {bad!r})",
                           f"convert the file to UTF-8, or pass --encoding {other} (or the file's encoding)") from None


# .NAME.<pid>.<8 random characters from tempfile><suffix such as .partial, .tmp, .png>
_TEMP = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[a-z0-9_]{8}(?:\.[A-Za-z0-9]+)?$")


def temp_prefix(path: Path) -> str:
    """Prefix of this process's temp siblings of ``path``; the pid lets a later run tell stale ones apart."""
    return f".{path.name}.{os.getpid()}."


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def sweep_stale_temps(path: str | Path, every_name: bool = False) -> list[Path]:
    """Remove temp siblings of ``path`` whose writing process no longer runs; return what was removed.

    ``every_name``: those of every file in ``path``'s folder (a folder of many outputs, e.g. shards).
    """
    path = Path(path)
    parent = path.parent
    if not parent.is_dir():
        return []
    removed = []
    for entry in parent.iterdir():
        m = _TEMP.match(entry.name)
        if not m or (m["name"] != path.name and not every_name) or _alive(int(m["pid"])):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


def check_port_free(host: str, port: int) -> None:
    """Bind ``host:port`` once, as the server will, so a busy port is a one-line error before the model loads.

    ``port`` is already in range: the serve/webui schemas bound ``--port`` to 1-65535.
    """
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise ZhllamaError(f"--host {host}: cannot resolve it ({e.strerror})", "use an address such as 127.0.0.1 or 0.0.0.0") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: TIME_WAIT leftovers are fine
        try:
            s.bind(address)
        except OSError as e:
            raise ZhllamaError(f"cannot listen on {host}:{port}: {e.strerror}",
                               "choose another --port, or stop the program that uses it") from None

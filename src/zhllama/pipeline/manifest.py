"""Stage manifests and input fingerprints.

Each stage folder holds ``manifest.json``: the stage's settings, its inputs with sha256
checksums, package versions, metrics, wall time, and the checksums of what it wrote.  A stage is
up to date when its manifest says ``complete`` and its *key* (a hash of settings + input
checksums) equals the key computed now.  Hashes of large files are cached by (size, mtime) so a
re-run does not read a 13 GB model again.
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from ..io import read_json, write_json_atomic

MANIFEST = "manifest.json"
VERSIONED = ("zhllama", "torch", "transformers", "peft", "accelerate", "datasets", "sentencepiece", "tokenizers")


class HashCache:
    """sha256 of files, remembered by (path, size, mtime) in the run folder."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self.table: dict[str, list] = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        except ValueError:
            self.table = {}
        self.dirty = False

    def file(self, p: Path) -> str:
        st = p.stat()
        key = str(p.resolve())
        hit = self.table.get(key)
        if hit and hit[0] == st.st_size and hit[1] == st.st_mtime_ns:
            return hit[2]
        h = hashlib.sha256()
        with p.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        digest = h.hexdigest()
        self.table[key] = [st.st_size, st.st_mtime_ns, digest]
        self.dirty = True
        return digest

    def tree(self, root: Path) -> dict[str, str]:
        """Checksums of every file under a folder (hidden work files excluded)."""
        out = {}
        for p in sorted(root.rglob("*")):
            rel = p.relative_to(root)
            if p.is_file() and not any(part.startswith(".") for part in rel.parts):
                out[str(rel)] = self.file(p)
        return out

    def save(self) -> None:
        if self.dirty:
            write_json_atomic(self.path, self.table)
            self.dirty = False


def digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()


def describe_input(value: str | list | dict, hashes: HashCache, produced: dict[str, str]) -> dict | list:
    """What an input is, for the key: a stage output (its checksum), a file, a folder or a hub id; a
    list or mapping of inputs, each one described."""
    if isinstance(value, list):
        return [describe_input(v, hashes, produced) for v in value]
    if isinstance(value, dict):
        return {k: describe_input(v, hashes, produced) for k, v in value.items()}
    if value in produced:
        return {"path": value, "sha256": produced[value]}
    p = Path(value)
    if p.is_file():
        return {"path": value, "sha256": hashes.file(p)}
    if p.is_dir():
        return {"path": value, "sha256": digest(hashes.tree(p))}
    return {"hub_id": value}


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def read_manifest(stage_dir: Path) -> dict | None:
    p = stage_dir / MANIFEST
    if not p.is_file():
        return None
    return read_json(p, "delete the stage folder to run the stage again")


def write_manifest(stage_dir: Path, **fields) -> dict:
    data = {"written": time.strftime("%Y-%m-%dT%H:%M:%S"), **fields}
    write_json_atomic(stage_dir / MANIFEST, data)
    return data

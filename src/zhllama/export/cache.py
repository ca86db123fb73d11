"""A model folder's GGUF, exported on first use and cached in the folder (``--engine llamacpp``).

``cached_gguf(folder, outtype)`` returns ``folder/.zhllama-gguf/<outtype>-<key>.gguf``, exporting
it with :func:`~zhllama.export.gguf.export_gguf` when it is not there.  The key is a hash of the
outtype and of the content of every file in the folder (names and sha256), so a folder whose
weights, tokenizer or template changed is exported again and an old file is never run by mistake;
the older files of that outtype are removed then.  The export is atomic (a temp file renamed into
place), so an interrupted export leaves nothing that could be taken for a finished one.

Hashing reads the files; each file's sha256 is kept in ``.zhllama-gguf/digests.json`` by (size,
modification time) so a second start does not read a 13 GB model again.  The cache folder is hidden:
the pipeline's folder checksums skip hidden names, and so does the key here.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

from ..errors import ZhllamaError
from ..io import write_json_atomic

CACHE_DIR = ".zhllama-gguf"
_DIGESTS = "digests.json"


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def folder_key(folder: Path, outtype: str, memo: dict) -> str:
    """Hash of ``outtype`` and every visible file of ``folder`` (name, sha256); ``memo`` is updated."""
    entries = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if not path.is_file() or any(part.startswith(".") for part in rel.parts):
            continue
        st = path.stat()
        hit = memo.get(str(rel))
        if not (hit and hit[0] == st.st_size and hit[1] == st.st_mtime_ns):
            hit = memo[str(rel)] = [st.st_size, st.st_mtime_ns, _file_sha256(path)]
        entries.append([str(rel), hit[2]])
    body = json.dumps({"outtype": outtype, "files": entries}, sort_keys=True)
    return hashlib.sha256(body.encode()).hexdigest()[:16]


def _read_memo(path: Path) -> dict:
    try:
        memo = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return memo if isinstance(memo, dict) else {}


def cached_gguf(folder: str | Path, outtype: str) -> Path:
    """The GGUF of ``folder`` as ``outtype``, exported now if the folder changed or was never exported."""
    from .gguf import export_gguf

    folder = Path(folder)
    cache = folder / CACHE_DIR
    memo = _read_memo(cache / _DIGESTS)
    key = folder_key(folder, outtype, memo)
    target = cache / f"{outtype}-{key}.gguf"
    if target.is_file():
        return target
    try:
        cache.mkdir(exist_ok=True)
        write_json_atomic(cache / _DIGESTS, memo)
    except OSError as e:
        raise ZhllamaError(f"cannot write the GGUF cache in {folder} ({e.strerror})",
                           f"export the file yourself (zhllama export gguf --model {folder} --out x.gguf --outtype "
                           f"{outtype}) and pass --model x.gguf") from None
    print(f"zhllama: exporting {folder} to GGUF {outtype} for llama.cpp (once; cached as {target})",
          file=sys.stderr, flush=True)
    export_gguf(folder, target, outtype=outtype, progress=sys.stderr.isatty())
    for old in cache.glob(f"{outtype}-*.gguf"):
        if old != target:
            old.unlink(missing_ok=True)
    return target

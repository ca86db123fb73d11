"""Loading tokenizers: the one place that loads one (models load in :mod:`zhllama.model.load`).

:func:`load_tokenizer` takes a tokenizer or model folder, a hub id or a bare SentencePiece
``tokenizer.model`` (file or folder), and gives SentencePiece's exact ids: a bare model gets the
Hugging Face files of :mod:`zhllama.tokenizer.hf`, one with tied merge scores the
SentencePiece-backed tokenizer of :mod:`zhllama.tokenizer.exact` (Chinese-LLaMA-2's, whose mergeable
pieces tie on score: no ``tokenizer.json`` can give its ids).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from ..checks import is_local
from ..errors import ZhllamaError

log = logging.getLogger(__name__)

TOKENIZER_MARKER_FILES = ("tokenizer.json", "tokenizer.model", "tokenizer_config.json")


def has_tokenizer_files(folder: str | Path) -> bool:
    return any((Path(folder) / name).is_file() for name in TOKENIZER_MARKER_FILES)


def load_tokenizer(path: str | Path):
    """A tokenizer from a folder, a hub id or a bare SentencePiece model (file or folder)."""
    p = Path(path).expanduser()
    exact = _sentencepiece_if_tied(p)
    if exact is not None:
        return exact
    if p.is_file() or (p.is_dir() and not (p / "tokenizer.json").is_file() and (p / "tokenizer.model").is_file()):
        return _load_sentencepiece(p)
    if not p.exists() and is_local(path):
        raise ZhllamaError(f"tokenizer not found: {p}", "give a tokenizer folder, a tokenizer.model file or a hub id")
    if p.is_dir() and not has_tokenizer_files(p):
        raise ZhllamaError(f"{p} holds no tokenizer (no tokenizer.json, tokenizer.model or tokenizer_config.json)",
                           "give a folder written by `zhllama tokenizer merge` or a Hugging Face model folder")
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(p) if p.exists() else str(path))
    except (OSError, ValueError, json.JSONDecodeError) as e:
        raise ZhllamaError(f"cannot load a tokenizer from {path}: {str(e).splitlines()[0]}",
                           "give a folder written by `zhllama tokenizer merge` or a Hugging Face model folder") from None


def _sentencepiece_if_tied(p: Path):
    """The SentencePiece-backed tokenizer when ``p``'s ``tokenizer.model`` has mergeable pieces with tied
    scores (no ``tokenizer.json`` can give SentencePiece's ids then: :mod:`zhllama.tokenizer.exact`), else None."""
    from . import spm as S
    from .exact import load_sentencepiece_tokenizer, needs_sentencepiece

    sp_file = p if p.is_file() else p / "tokenizer.model"
    if not sp_file.is_file():
        return None
    try:
        proto = S.load_proto(sp_file)
    except ZhllamaError:
        return None  # not a SentencePiece model: the other paths load tokenizer.json or say what is wrong
    if not needs_sentencepiece(proto):
        return None
    config, added = _folder_settings(p) if p.is_dir() else ({}, [])
    log.info("%s: mergeable pieces share scores; encoding with SentencePiece for its exact ids", sp_file)
    return load_sentencepiece_tokenizer(sp_file, config, added)


def _folder_settings(folder: Path) -> tuple[dict, list[tuple[int, str, bool]]]:
    """A tokenizer folder's ``tokenizer_config.json`` (its ``chat_template.jinja`` first, as transformers reads
    it) and the tokens its files add, as ``(id, text, special)``."""
    from ..io import read_json

    config, added = {}, []
    if (folder / "tokenizer_config.json").is_file():
        config = read_json(folder / "tokenizer_config.json", "fix or delete the tokenizer's tokenizer_config.json")
        added += [(int(i), t["content"], bool(t.get("special"))) for i, t in (config.get("added_tokens_decoder") or {}).items()]
    if (folder / "chat_template.jinja").is_file():
        config["chat_template"] = (folder / "chat_template.jinja").read_text(encoding="utf-8")
    if (folder / "tokenizer.json").is_file():
        data = read_json(folder / "tokenizer.json", "fix or delete the tokenizer's tokenizer.json")
        added += [(int(t["id"]), t["content"], bool(t.get("special"))) for t in data.get("added_tokens") or []]
    return config, sorted(set(added))


def _load_sentencepiece(p: Path):
    """Write the exact Hugging Face files for a SentencePiece model in a temp folder and load them.

    transformers' own conversion of ``tokenizer.model`` gives other ids (see zhllama.tokenizer.hf).
    In a folder, the settings of its ``tokenizer_config.json`` (BOS/EOS, length, chat template) are kept.
    """
    import tempfile

    from ..io import read_json
    from .hf import write_hf_tokenizer

    config = {}
    if p.is_dir() and (p / "tokenizer_config.json").is_file():
        config = read_json(p / "tokenizer_config.json", "fix or delete the tokenizer's tokenizer_config.json")
    with tempfile.TemporaryDirectory() as tmp:
        write_hf_tokenizer(p, tmp, add_bos=config.get("add_bos_token", True), add_eos=config.get("add_eos_token", False),
                           model_max_length=config.get("model_max_length"))
        tokenizer = load_tokenizer(tmp)
    if config.get("chat_template"):
        tokenizer.chat_template = config["chat_template"]
    return tokenizer


def load_base_tokenizer(model_src: str | Path):
    """The tokenizer that ships with a model (folder or hub id), or None when its folder has none."""
    if Path(model_src).is_dir() and not has_tokenizer_files(model_src):
        return None
    return load_tokenizer(model_src)

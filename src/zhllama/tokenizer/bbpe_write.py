"""``zhllama tokenizer merge`` on a byte-level BPE base: read the inputs, extend, write the folder.

The folder written holds the extended ``tokenizer.json`` (:mod:`zhllama.tokenizer.bbpe_merge`), the
base's ``tokenizer_config.json``, ``special_tokens_map.json`` and ``chat_template.jinja`` as they
were (a ``<pad>`` added with ``--pad-token`` becomes the config's pad token), and
``merge_report.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import ZhllamaError
from . import bbpe
from . import spm as S

CARRIED = ("tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja")


def added_texts(path: str | Path) -> list[str]:
    """The pieces of an ``--add`` tokenizer as text, in its own order (SentencePiece: by score; a
    byte-level BPE: by id, i.e. the order its trainer learnt them).  ``▁`` becomes a space."""
    p = Path(path)
    if p.is_file() and p.name != "tokenizer.json" or (p / "tokenizer.model").is_file():
        proto = S.load_proto(p)
        return [x.piece.replace("▁", " ") for x in proto.pieces if x.type == S.NORMAL]
    if not p.exists():
        raise ZhllamaError(f"--add {p}: not found", "give a SentencePiece .model or a byte-level BPE tokenizer folder")
    data = bbpe.read_tokenizer_json(p)
    bbpe.check_byte_level(data, p, "--add")
    specials = bbpe.added_contents(data)
    tokens = sorted((i, t) for t, i in data["model"]["vocab"].items() if t not in specials)
    return [text for _, t in tokens if (text := bbpe.token_text(t)) is not None]


def merge_byte_level(base: Path, add: list, out, mode: str = "extend", placement: str = "above",
                     pad_token: bool = False, max_pieces: int | None = None, overwrite: bool = False):
    """Extend the byte-level BPE folder ``base`` with the Chinese pieces of ``add``; write ``out`` atomically."""
    from tokenizers import Tokenizer

    from ..io import atomic_dir, read_json, write_json_atomic
    from .bbpe_merge import extend

    if mode != "extend":
        raise ZhllamaError(f"--mode {mode} works on SentencePiece bases only; {base} is a byte-level BPE",
                           "leave --mode out (extend: Chinese tokens only, every other id unchanged)")
    if placement != "above":
        raise ZhllamaError(f"--placement {placement} works on SentencePiece bases only; {base} is a byte-level BPE, "
                           "whose new merges always rank after all of its own", "leave --placement out")
    data = bbpe.read_tokenizer_json(base)
    texts = [t for a in add for t in added_texts(a)]
    extended, result = extend(data, texts, max_pieces, pad_token)
    with atomic_dir(out, overwrite) as tmp:
        Tokenizer.from_str(json.dumps(extended, ensure_ascii=False)).save(str(tmp / "tokenizer.json"))
        for name in CARRIED:
            if (base / name).is_file():
                (tmp / name).write_bytes((base / name).read_bytes())
        if result.pad_id is not None:
            config = read_json(tmp / "tokenizer_config.json", "fix the base's tokenizer_config.json") \
                if (tmp / "tokenizer_config.json").is_file() else {"tokenizer_class": "PreTrainedTokenizerFast"}
            write_json_atomic(tmp / "tokenizer_config.json", {**config, "pad_token": "<pad>"})
        report = {"base": str(base), "add": [str(a) for a in add], "kind": "byte-bpe", "mode": mode,
                  "new_ids_from": result.base_size, "new_merges_ranked_from": len(bbpe.merges_of(data)),
                  "pre_tokenizer_regex": list(bbpe.split_regexes(data)),
                  "ignore_merges": bool(data["model"].get("ignore_merges")), **result.summary()}
        write_json_atomic(tmp / "merge_report.json", report)
    return result

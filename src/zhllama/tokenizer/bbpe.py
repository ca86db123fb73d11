"""Byte-level BPE tokenizers (Llama-3, Qwen2, GPT-2 style ``tokenizer.json``): reading, checking, naming.

A byte-level BPE works on the UTF-8 bytes of each pre-token, each byte written as one printable
character of GPT-2's byte-to-unicode table (a space is ``Ġ``); its tokens and merges are strings in
that alphabet.  This module reads and checks such a ``tokenizer.json`` (one ``zhllama: error:`` line
for an unreadable or truncated file, a WordPiece/Unigram model, another alphabet), converts between
text and the byte alphabet, and tells the pre-tokenizer name llama.cpp expects for it.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from ..errors import ZhllamaError

# llama.cpp's pre-tokenizer names (``tokenizer.ggml.pre``) by the regex a tokenizer.json splits with
# (its own regexes for these names in llama-vocab.cpp are the same patterns) and whether its BPE
# ignores merges for whole-word tokens (llama.cpp sets ignore_merges for llama-bpe only).
LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
                r"\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
               r"\s*[\r\n]+|\s+(?!\S)|\s+")
LLAMA_CPP_PRE = {
    ((LLAMA3_REGEX,), True): "llama-bpe",
    ((QWEN2_REGEX,), False): "qwen2",
    ((), False): "gpt-2",  # ByteLevel's own GPT-2 regex, no Split step
}


@lru_cache(maxsize=1)
def byte_to_char() -> dict[int, str]:
    """GPT-2's table: each byte -> one printable character (what ``tokenizers``' ByteLevel uses).

    Written out here because ``tokenizers`` exposes only the alphabet, not the mapping."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    table, extra = {}, 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


@lru_cache(maxsize=1)
def char_to_byte() -> dict[str, int]:
    return {c: b for b, c in byte_to_char().items()}


def to_byte_level(text: str) -> str:
    """Text -> the token string of its UTF-8 bytes (``" 中"`` -> ``"Ġä¸Ń"``)."""
    table = byte_to_char()
    return "".join(table[b] for b in text.encode("utf-8"))


def token_bytes(token: str) -> bytes | None:
    """A byte-level token -> its bytes; None when a character is not in the byte alphabet."""
    table = char_to_byte()
    try:
        return bytes(table[c] for c in token)
    except KeyError:
        return None


def token_text(token: str) -> str | None:
    """A byte-level token -> the text it stands for; None for a fragment of a character (not UTF-8)."""
    raw = token_bytes(token)
    if raw is None:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def read_tokenizer_json(path: str | Path) -> dict:
    """A ``tokenizer.json`` as a dict; an unreadable, truncated or non-tokenizer file is a one-line error."""
    p = Path(path)
    if p.is_dir():
        p = p / "tokenizer.json"
    if not p.is_file():
        raise ZhllamaError(f"no tokenizer.json in {p.parent}", "give a folder holding a Hugging Face tokenizer.json")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ZhllamaError(f"{p} is not UTF-8 text", "give a Hugging Face tokenizer.json") from None
    except json.JSONDecodeError as e:
        raise ZhllamaError(f"{p} is not valid JSON (line {e.lineno}, column {e.colno}: {e.msg}); truncated?",
                           "copy the tokenizer.json again from the model's repository") from None
    if not isinstance(data, dict) or not isinstance(data.get("model"), dict):
        raise ZhllamaError(f"{p} has no tokenizer model", "give a Hugging Face tokenizer.json")
    return data


def _pre_tokenizer_steps(data: dict) -> list[dict]:
    pre = data.get("pre_tokenizer") or {}
    return list(pre.get("pretokenizers") or []) if pre.get("type") == "Sequence" else ([pre] if pre else [])


def is_byte_level(data: dict) -> bool:
    """A BPE whose pre-tokenizer ends in ``ByteLevel`` (the Llama-3/Qwen2/GPT-2 layout)."""
    return data["model"].get("type") == "BPE" and any(s.get("type") == "ByteLevel" for s in _pre_tokenizer_steps(data))


def check_byte_level(data: dict, where: str | Path, role: str = "--base") -> None:
    """Raise a one-line error unless ``data`` is a byte-level BPE over GPT-2's byte alphabet."""
    kind = data["model"].get("type") or "unknown"
    if kind != "BPE":
        raise ZhllamaError(f"{role} {where}: its tokenizer.json is a {kind} model, not a byte-level BPE",
                           "give a byte-level BPE tokenizer (Llama-3, Qwen2) or a SentencePiece tokenizer.model")
    if not is_byte_level(data):
        raise ZhllamaError(f"{role} {where}: its tokenizer.json is a BPE without a ByteLevel pre-tokenizer "
                           "(another byte alphabet)",
                           "give a byte-level BPE tokenizer, e.g. one written by zhllama tokenizer train --type byte-bpe")
    alphabet, added = set(byte_to_char().values()), added_contents(data)
    odd = next((t for t in data["model"].get("vocab", {}) if not set(t) <= alphabet and t not in added), None)
    if odd is not None:
        raise ZhllamaError(f"{role} {where}: token {odd!r} is not written in the GPT-2 byte alphabet",
                           "give a byte-level BPE tokenizer whose tokens are byte strings (Llama-3, Qwen2)")


def added_contents(data: dict) -> set[str]:
    return {t["content"] for t in data.get("added_tokens") or []}


def split_regexes(data: dict) -> tuple[str, ...]:
    return tuple(s["pattern"].get("Regex", s["pattern"].get("String", "")) for s in _pre_tokenizer_steps(data)
                 if s.get("type") == "Split")


def merges_of(data: dict) -> list[tuple[str, str]]:
    """The merge list as pairs, whichever of the two layouts (``"a b"`` or ``["a", "b"]``) the file uses."""
    return [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in data["model"].get("merges") or []]


def llama_cpp_pre(data: dict, where: str | Path = "tokenizer.json") -> str:
    """The ``tokenizer.ggml.pre`` name llama.cpp expects, from the pre-tokenizer regex and ``ignore_merges``.

    Derived from the settings themselves rather than llama.cpp's hash of the encoding of a test
    string (``get_vocab_base_pre``): that hash changes once Chinese tokens are added, these settings
    do not (merge keeps them)."""
    key = (split_regexes(data), bool(data["model"].get("ignore_merges")))
    name = LLAMA_CPP_PRE.get(key)
    if name is None:
        raise ZhllamaError(f"{where}: llama.cpp's name for this pre-tokenizer is not known to zhllama "
                           f"(split regex {key[0][:1]!r}, ignore_merges {key[1]})",
                           f"zhllama exports byte-level BPE tokenizers of these kinds: {', '.join(LLAMA_CPP_PRE.values())}")
    return name


def adds_bos(data: dict) -> bool:
    """Whether the post-processor puts a special token before the text (Llama-3's BOS)."""
    post = data.get("post_processor") or {}
    steps = post.get("processors") or [post] if post.get("type") == "Sequence" else [post]
    for step in steps:
        if step and step.get("type") == "TemplateProcessing":
            single = step.get("single") or []
            return bool(single) and "SpecialToken" in single[0]
    return False


def id_to_token(data: dict) -> dict[int, str]:
    """Every id the file defines (model vocabulary and added tokens) -> its token string."""
    out = {int(i): t for t, i in data["model"].get("vocab", {}).items()}
    out.update({int(t["id"]): t["content"] for t in data.get("added_tokens") or []})
    return out

"""Extend a byte-level BPE tokenizer (Llama-3, Qwen2) with Chinese tokens, every other id unchanged.

Layout of the result (``tokenizer.json`` of the base, extended):

* every base token keeps its id, special and added tokens included (Llama-3's 256 special tokens
  stay at 128,000-128,255); new tokens get the ids after the base's last id (Llama-3: 128,256 on);
* new merges are ranked after all of the base's merges; every other setting of the file is kept
  as it was (normalizer, pre-tokenizer regex, ``ignore_merges``, post-processor/BOS, decoder, added
  tokens), and the folder's ``tokenizer_config.json``/chat template are copied.

Which tokens: the pieces of the added model(s) made of Chinese characters, CJK punctuation and
fullwidth forms, with an optional leading space (a SentencePiece ``▁``), that are one pre-token of
the base's pre-tokenizer (a token spanning two pre-tokens could never be produced), in the added
model's order.

Reachability.  BPE applies the lowest-ranked merge available; new merges rank after all base
merges, so on any text the base's merges run to the end first and the new ones then join the
resulting tokens.  For each new token the merges are planned on exactly that: :func:`bpe_segment`
gives the current segmentation of the token's bytes (base merges, then the new ones so far), and
adjacent pieces are joined one merge at a time (pieces of one character first, then whole
characters) until the token is one piece; a missing intermediate (e.g. the first two bytes of a
character the base lacks) becomes a token of its own.  A merge added later ranks after all earlier
ones, so it cannot break an earlier token.  After writing, the real ``tokenizers`` library encodes
every new token's text (with ``ignore_merges`` off, so merges alone must form it) and must give
that one token.

Why text without Chinese keeps its ids: a new merge fires only where its two tokens sit side by
side, i.e. where the text's bytes contain the merged string.  Every new merge's string is checked
(:func:`implies_chinese`) to contain the bytes of a Chinese character, or the first bytes of one
that only Chinese characters start with; so it cannot occur in text without such a character and
the base's segmentation of that text is left as it was.  Characters whose first bytes are shared
with other scripts (e.g. CJK punctuation next to kana) are taken only when the base already has
a token for the character itself; others are reported as skipped.
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass, field
from functools import lru_cache

from ..errors import ZhllamaError
from . import bbpe
from .merge import CHINESE_CHAR, is_chinese_piece


@lru_cache(maxsize=4096)
def _prefix_all_chinese(prefix: bytes) -> bool:
    """True when every character whose UTF-8 encoding starts with ``prefix`` is Chinese (``CHINESE_CHAR``)."""
    lead = prefix[0]
    length = 2 if 0xC0 <= lead < 0xE0 else 3 if lead < 0xF0 else 4
    missing = length - len(prefix)
    for tail in itertools.product(range(0x80, 0xC0), repeat=missing):
        try:
            ch = (prefix + bytes(tail)).decode("utf-8")
        except UnicodeDecodeError:
            continue  # surrogates and overlong forms: never in valid text
        if not CHINESE_CHAR.fullmatch(ch):
            return False
    return True


def implies_chinese(raw: bytes) -> bool:
    """Whether any valid UTF-8 text containing ``raw`` must contain a Chinese character.

    True when ``raw`` holds a lead byte whose character is complete and Chinese, or incomplete
    with every possible completion Chinese."""
    for i, b in enumerate(raw):
        if b < 0xC0 or b > 0xF4:
            continue  # ASCII or a continuation byte
        length = 2 if b < 0xE0 else 3 if b < 0xF0 else 4
        chunk = raw[i:i + length]
        if any(not 0x80 <= c < 0xC0 for c in chunk[1:]):
            continue
        if len(chunk) == length:
            try:
                if CHINESE_CHAR.fullmatch(chunk.decode("utf-8")):
                    return True
            except UnicodeDecodeError:
                continue
        elif len(chunk) > 1 and _prefix_all_chinese(chunk):
            return True
    return False


def bpe_segment(word: str, ranks: dict[tuple[str, str], int], extra: dict[tuple[str, str], int] | None = None) -> list[str]:
    """The BPE segmentation of one pre-token (byte-level string) by ranked merges, as ``tokenizers`` and
    llama.cpp apply them: the lowest rank first, the leftmost of equal ones (no ``ignore_merges`` shortcut).
    ``extra`` holds merges ranked after all of ``ranks``'."""
    parts = list(word)
    while len(parts) > 1:
        best, at = None, -1
        for i in range(len(parts) - 1):
            pair = (parts[i], parts[i + 1])
            r = ranks.get(pair)
            if r is None and extra:
                r = extra.get(pair)
            if r is not None and (best is None or r < best):
                best, at = r, i
        if best is None:
            break
        parts[at:at + 2] = [parts[at] + parts[at + 1]]
    return parts


@dataclass
class ByteLevelMerge:
    """The extended vocabulary and merges, and what was done (``merge_report.json``)."""

    base_size: int
    added: list[str] = field(default_factory=list)  # new tokens in id order (byte-level strings)
    merges: list[tuple[str, str]] = field(default_factory=list)  # new merges in rank order
    already_in_base: int = 0
    skipped_not_chinese: int = 0
    skipped_crosses_pre_tokens: list[str] = field(default_factory=list)
    skipped_byte_prefix_shared: list[str] = field(default_factory=list)
    unreachable: list[str] = field(default_factory=list)
    truncated: int = 0
    pad_id: int | None = None

    def summary(self) -> dict:
        texts = [bbpe.token_text(t) for t in self.added]
        return {"base_pieces": self.base_size, "added_pieces": len(self.added),
                "total_pieces": self.base_size + len(self.added) + (self.pad_id is not None),
                "pad_id": self.pad_id, "added_merges": len(self.merges),
                "added_whole_words": sum(t is not None for t in texts),
                "added_character_fragments": sum(t is None for t in texts),
                "already_in_base": self.already_in_base, "skipped_not_chinese": self.skipped_not_chinese,
                "skipped_crosses_pre_tokens": self.skipped_crosses_pre_tokens,
                "skipped_byte_prefix_shared": self.skipped_byte_prefix_shared,
                "unreachable": self.unreachable, "truncated": self.truncated}


def _char_spans(word: str) -> list[int]:
    """For each byte of ``word`` (a byte-level string of valid UTF-8), the index of its character."""
    out, k = [], -1
    for c in word:
        if not 0x80 <= bbpe.char_to_byte()[c] < 0xC0:
            k += 1
        out.append(k)
    return out


def _next_merge(parts: list[str], char_of: list[int]) -> int | None:
    """Which adjacent pair to join next (its left index): pairs within one character first, then pairs of
    whole characters, then any, leftmost first; only pairs whose bytes imply a Chinese character.
    None when no pair may be joined."""
    def starts_char(pos: int) -> bool:
        return pos == 0 or pos == len(char_of) or char_of[pos - 1] != char_of[pos]

    starts = list(itertools.accumulate([0] + [len(p) for p in parts]))
    best = None
    for i in range(len(parts) - 1):
        if not implies_chinese(bbpe.token_bytes(parts[i] + parts[i + 1])):
            continue
        lo, mid, hi = starts[i], starts[i + 1], starts[i + 2]
        if char_of[lo] == char_of[hi - 1]:
            kind = 0
        elif starts_char(lo) and starts_char(mid) and starts_char(hi):
            kind = 1
        else:
            kind = 2
        if best is None or kind < best[0]:
            best = (kind, i)
    return None if best is None else best[1]


class Extender:
    """Plans the new tokens and merges one candidate at a time (see the module's docstring)."""

    def __init__(self, base: dict, room: int | None):
        self.vocab = set(base["model"]["vocab"]) | bbpe.added_contents(base)
        self.ranks = {m: r for r, m in enumerate(bbpe.merges_of(base))}
        self.room = room
        self.result = ByteLevelMerge(base_size=len(bbpe.id_to_token(base)))

    def plan(self, token: str) -> tuple[list[tuple[str, str]], list[str]] | None:
        """The merges (and new tokens) that make ``token`` one piece, or None when a needed pair is unsafe."""
        ranks, merges, new = self.ranks, [], []
        char_of = _char_spans(token)
        extra = {}
        parts = bpe_segment(token, ranks)
        while len(parts) > 1:
            i = _next_merge(parts, char_of)
            if i is None:
                return None
            pair = (parts[i], parts[i + 1])
            extra[pair] = len(ranks) + len(extra)
            merges.append(pair)
            joined = pair[0] + pair[1]
            if joined not in self.vocab and joined not in new:
                new.append(joined)
            parts = bpe_segment(token, ranks, extra)
        return merges, new

    def add(self, token: str) -> bool:
        """Add ``token`` with whatever it needs; False once the budget is spent."""
        planned = self.plan(token)
        if planned is None:
            self.result.skipped_byte_prefix_shared.append(bbpe.token_text(token))
            return True
        merges, new = planned
        if self.room is not None and len(new) > self.room:
            return False
        for pair in merges:
            self.ranks[pair] = len(self.ranks)
            self.result.merges.append(pair)
        self.vocab.update(new)
        self.result.added += new
        if self.room is not None:
            self.room -= len(new)
        return True


def chinese_candidates(texts: list[str], pre_tokenize, result: ByteLevelMerge) -> list[str]:
    """The byte-level strings of the Chinese pieces among ``texts`` (in order, each once) that are one pre-token."""
    out, seen = [], set()
    for text in texts:
        if text in seen:
            continue
        seen.add(text)
        if not is_chinese_piece(text.replace(" ", "▁", 1) if text.startswith(" ") else text):
            result.skipped_not_chinese += 1
            continue
        token = bbpe.to_byte_level(text)
        if [p for p, _ in pre_tokenize(text)] != [token]:
            result.skipped_crosses_pre_tokens.append(text)
            continue
        out.append(token)
    return out


def extend(base: dict, texts: list[str], max_pieces: int | None = None, pad_token: bool = False) -> tuple[dict, ByteLevelMerge]:
    """The extended ``tokenizer.json`` data of ``base`` (left unchanged) with the Chinese ``texts`` added."""
    from tokenizers import Tokenizer

    base_tok = Tokenizer.from_str(_dumps(base))
    pre = base_tok.pre_tokenizer.pre_tokenize_str if base_tok.pre_tokenizer else (lambda t: [(bbpe.to_byte_level(t), None)])
    n_base = len(bbpe.id_to_token(base))
    if max_pieces is not None and max_pieces < n_base + pad_token:
        raise ZhllamaError(f"--max-pieces {max_pieces:,} is below the base's {n_base + pad_token:,} tokens",
                           "raise --max-pieces or leave it out")
    room = None if max_pieces is None else max_pieces - n_base - pad_token
    ext = Extender(base, room)
    candidates = chinese_candidates(texts, pre, ext.result)
    for k, token in enumerate(candidates):
        if token in ext.vocab:
            ext.result.already_in_base += 1
            continue
        if not ext.add(token):
            ext.result.truncated = sum(t not in ext.vocab for t in candidates[k:])
            break
    data = _extended_data(base, ext.result, n_base, pad_token)
    ext.result.unreachable = unreachable_tokens(data, ext.result.added)
    return data, ext.result


def _extended_data(base: dict, result: ByteLevelMerge, n_base: int, pad_token: bool) -> dict:
    data = copy.deepcopy(base)
    model = data["model"]
    for t in data.get("added_tokens") or []:  # tokenizers renumbers added tokens the model vocabulary lacks
        model["vocab"].setdefault(t["content"], int(t["id"]))
    next_id = n_base
    if pad_token and "<pad>" not in bbpe.added_contents(base):
        result.pad_id = next_id
        model["vocab"]["<pad>"] = next_id
        data.setdefault("added_tokens", []).append({"id": next_id, "content": "<pad>", "single_word": False, "lstrip": False,
                                                     "rstrip": False, "normalized": False, "special": True})
        next_id += 1
    for k, token in enumerate(result.added):
        model["vocab"][token] = next_id + k
    as_strings = bool(model.get("merges")) and isinstance(model["merges"][0], str)
    model.setdefault("merges", []).extend(f"{a} {b}" if as_strings else [a, b] for a, b in result.merges)
    return data


def _dumps(data: dict) -> str:
    import json

    return json.dumps(data, ensure_ascii=False)


def unreachable_tokens(data: dict, added: list[str]) -> list[str]:
    """New whole-word tokens that the merges alone do not form from their own text (checked with ``tokenizers``)."""
    from tokenizers import Tokenizer

    probe = copy.deepcopy(data)
    probe["model"]["ignore_merges"] = False
    tok = Tokenizer.from_str(_dumps(probe))
    words = [(t, bbpe.token_text(t)) for t in added]
    words = [(t, text) for t, text in words if text is not None]
    encoded = tok.encode_batch([text for _, text in words], add_special_tokens=False)
    vocab = data["model"]["vocab"]
    return [text for (t, text), e in zip(words, encoded) if e.ids != [vocab[t]]]

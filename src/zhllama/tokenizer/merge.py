"""Merge Chinese SentencePiece pieces into a LLaMA tokenizer, on the SentencePiece protobuf.

Two modes:

* ``chinese-llama`` reproduces the first Chinese-LLaMA merge exactly: every piece of the added
  model(s) that the base lacks is appended in order, as a normal piece with score 0.  Equal
  scores leave ties that SentencePiece breaks by position in the text and a ranked BPE merge list
  breaks by rank, so the Hugging Face ``tokenizer.json`` disagrees with SentencePiece on some
  Chinese strings; zhllama's loader therefore encodes such a tokenizer with SentencePiece
  (:mod:`zhllama.tokenizer.exact`).
* ``extend`` (default) appends only pieces made of Chinese characters, CJK punctuation and
  fullwidth forms (optionally with a leading ``▁``).  SentencePiece BPE only ever merges two
  adjacent symbols into a piece of the vocabulary, so a piece that contains a Chinese character
  can never be formed from text without one: any such text tokenizes exactly as with the base.
  New pieces get distinct scores in the added model's order, so SentencePiece and the Hugging
  Face merge list rank them the same way and the HF files stay exact.  Pieces no pair of
  vocabulary pieces can form (a unigram model has some) are dropped: BPE could never emit them.
"""

from __future__ import annotations

import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ..config import option
from ..errors import ZhllamaError
from ..io import read_json
from . import spm as S

MergeMode = Literal["extend", "chinese-llama"]
Placement = Literal["above", "below"]
MODES = typing.get_args(MergeMode)
PLACEMENTS = typing.get_args(Placement)
PAD = "<pad>"

# Han ideographs (with extensions and compatibility forms), CJK radicals, CJK symbols and
# punctuation, Bopomofo, and fullwidth/halfwidth forms (but not halfwidth katakana).
_CJK = (r"\u2e80-\u2fdf\u3000-\u303f\u3100-\u312f\u31a0-\u31bf\u3400-\u4dbf\u4e00-\u9fff"
        r"\uf900-\ufaff\ufe30-\ufe4f\uff00-\uff64\uffe0-\uffee\U00020000-\U0003134f")
CHINESE_PIECE = re.compile(rf"▁?[{_CJK}]+")
CHINESE_CHAR = re.compile(rf"[{_CJK}]")
HAN_CHAR = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")


def is_chinese_piece(piece: str) -> bool:
    """True for pieces made only of Chinese characters/punctuation, with an optional leading ``▁``."""
    return CHINESE_PIECE.fullmatch(piece) is not None


def has_chinese(text: str) -> bool:
    """True when ``text`` holds a character that extend-mode pieces can contain."""
    return CHINESE_CHAR.search(text) is not None


@dataclass
class MergeResult:
    proto: object
    base_size: int
    added: list[str] = field(default_factory=list)
    skipped_unreachable: int = 0
    skipped_not_chinese: int = 0
    truncated: int = 0
    pad_id: int | None = None

    def summary(self) -> dict:
        return {"base_pieces": self.base_size, "added_pieces": len(self.added), "total_pieces": len(self.proto.pieces),
                "pad_id": self.pad_id, "skipped_not_chinese": self.skipped_not_chinese,
                "skipped_unreachable": self.skipped_unreachable, "truncated": self.truncated}


def chinese_llama_pieces(vocab: set[str], adds) -> list[str]:
    """Every piece of the added models that the base lacks, in order (the original script's rule)."""
    new = []
    for proto in adds:
        for p in proto.pieces:
            if p.piece not in vocab:
                vocab.add(p.piece)
                new.append(p.piece)
    return new


def _formable(piece: str, vocab: set[str], extra: tuple[str, ...] = ()) -> bool:
    """Whether BPE can produce ``piece``: it is one character, or two pieces of ``vocab``/``extra`` joined."""
    def has(x: str) -> bool:
        return x in vocab or x in extra

    return len(piece) == 1 or any(has(piece[:k]) and has(piece[k:]) for k in range(1, len(piece)))


def extend_pieces(vocab: set[str], adds, result: MergeResult, budget: int | None = None) -> list[str]:
    """Chinese normal pieces the base lacks, in order, keeping only those BPE can form.

    Each kept piece brings its own characters along (placed just before it) when the vocabulary
    lacks them: SentencePiece can merge a character it has no piece for, but the Hugging Face BPE
    turns such a character into bytes at once, so the two would disagree.  A BPE-trained model
    lists its single characters last, so without this a ``budget`` cut would drop them.
    """
    candidates: list[str] = []
    seen = set(vocab)
    for proto in adds:
        for p in proto.pieces:
            if p.type != S.NORMAL or p.piece in seen:
                continue
            seen.add(p.piece)
            if is_chinese_piece(p.piece):
                candidates.append(p.piece)
            else:
                result.skipped_not_chinese += 1
    known, order = set(vocab), {}
    room = float("inf") if budget is None else budget
    changed = True
    while changed:  # a piece may become formable once a later piece is accepted
        changed = False
        for rank, piece in enumerate(candidates):
            if piece in known:
                continue
            chars = tuple(c for c in dict.fromkeys(piece) if c not in known)
            cost = len(chars) + (piece not in chars)
            if cost <= room and _formable(piece, known, chars):
                for c in [*chars, piece]:
                    order.setdefault(c, (rank, len(order)))
                    known.add(c)
                room -= cost
                changed = True
    unplaced = [p for p in candidates if p not in known]
    result.skipped_unreachable = sum(not _formable(p, known) for p in unplaced)
    result.truncated = len(unplaced) - result.skipped_unreachable
    return sorted(order, key=order.get)


def new_scores(base, count: int, mode: str, placement: str) -> list[float]:
    """Scores for appended pieces: 0 for chinese-llama; distinct, in order, for extend.

    Scores are float32 in the protobuf, so they stay small integers (exact up to 2**24).
    ``above`` puts every new piece above the base's normal pieces (Chinese merges first);
    ``below`` puts them just under the lowest ordinary base score (LLaMA's whitespace-run
    pieces at -1e9 stay last).
    """
    if mode == "chinese-llama":
        return [0.0] * count
    normal = [p.score for p in base.pieces if p.type == S.NORMAL and p.score > -1e6]
    if placement == "above":
        top = max(0, int(max(normal, default=0.0)))  # above control pieces' 0 too: simply positive
        return [float(top + count - i) for i in range(count)]
    low = min(normal, default=0.0)
    return [float(int(low) - 1 - i) for i in range(count)]


def merge_protos(base, adds, mode: str = "extend", placement: str = "above", pad_token: bool = False,
                 max_pieces: int | None = None) -> MergeResult:
    """Return the merged proto (``base`` is modified in place) and what was done."""
    if mode not in MODES:
        raise ZhllamaError(f"unknown merge mode: {mode}", f"choose one of {', '.join(MODES)}")
    if mode == "extend" and base.trainer_spec.model_type != S.BPE:
        raise ZhllamaError("the extend mode needs a BPE base tokenizer (LLaMA-family models use BPE)",
                           "use --mode chinese-llama for a unigram base")
    result = MergeResult(proto=base, base_size=len(base.pieces))
    vocab = {p.piece for p in base.pieces}
    if pad_token and PAD not in vocab:
        # Chinese-LLaMA-2 puts <pad> right after LLaMA's pieces; a control piece here, so that
        # SentencePiece never produces it from text and HF treats it as a special token.
        result.pad_id = _append(base, PAD, 0.0, S.CONTROL)
        base.trainer_spec.pad_id = result.pad_id
        vocab.add(PAD)
    elif pad_token:
        result.pad_id = next(i for i, p in enumerate(base.pieces) if p.piece == PAD)
    if max_pieces is not None and max_pieces < len(base.pieces):
        raise ZhllamaError(f"--max-pieces {max_pieces} is below the base's {len(base.pieces)} pieces",
                           "raise --max-pieces (Chinese-LLaMA-2 uses 55296) or leave it out")
    room = None if max_pieces is None else max_pieces - len(base.pieces)
    if mode == "extend":
        new = extend_pieces(vocab, adds, result, room)
    else:
        new = chinese_llama_pieces(vocab, adds)
        if room is not None:
            result.truncated = max(0, len(new) - room)
            new = new[:room]
    for piece, score in zip(new, new_scores(base, len(new), mode, placement)):
        _append(base, piece, score, S.NORMAL)
    result.added = new
    base.trainer_spec.vocab_size = len(base.pieces)
    return result


def _append(proto, piece: str, score: float, kind: int) -> int:
    p = proto.pieces.add()
    p.piece, p.score, p.type = piece, score, kind
    return len(proto.pieces) - 1


def _base_hf_config(base_path: Path) -> dict:
    """add_bos/add_eos of a Hugging Face base folder, to carry them over.

    Not its chat_template: the merged folder gets zhllama's (``none``), which is what a model
    built on it is prompted with until an SFT run records its template.
    """
    cfg = base_path / "tokenizer_config.json" if base_path.is_dir() else None
    if not cfg or not cfg.is_file():
        return {}
    data = read_json(cfg, "fix or remove the file")
    keep = {"add_bos_token": "add_bos", "add_eos_token": "add_eos"}
    return {ours: data[k] for k, ours in keep.items() if isinstance(data.get(k), bool)}


@dataclass(kw_only=True)
class TokenizerMergeConfig:
    """``zhllama tokenizer merge``: its options; ``merge_tokenizers(**asdict(cfg))`` runs it."""

    base: str = option("a LLaMA tokenizer.model or a folder holding one, or a folder with a byte-level BPE "
                       "tokenizer.json (Llama-3, Qwen2)")
    add: list[str] = option("Chinese tokenizer to merge in: a SentencePiece model (or folder with tokenizer.model), "
                            "or for a byte-level base also a byte-level BPE folder; repeat for several",
                            metavar="TOKENIZER", repeat="append")
    out: str = option("output folder")
    mode: MergeMode = option("merge rule (a byte-level base: extend only)", "extend")
    placement: Placement = option("extend mode on a SentencePiece base: new pieces score above or below the base's "
                                  "pieces (a byte-level base ranks new merges after all of its own)", "above")
    pad_token: bool = option("add a <pad> piece right after the base's pieces", False)
    max_pieces: int | None = option("cap the merged vocabulary (e.g. 55296)", None, low=1)
    overwrite: bool = option("replace --out if it exists", False)


def merge_sentencepiece(base: str | Path, add: list[str | Path], out: str | Path, mode: str = "extend",
                        placement: str = "above", pad_token: bool = False, max_pieces: int | None = None,
                        overwrite: bool = False) -> MergeResult:
    """Merge on the protobuf and write ``tokenizer.model`` + Hugging Face files + ``merge_report.json`` into ``out``."""
    from ..io import atomic_dir, write_json_atomic
    from .hf import write_hf_tokenizer

    base_proto = S.load_proto(base)
    add_protos = [S.load_proto(a) for a in add]
    result = merge_protos(base_proto, add_protos, mode, placement, pad_token, max_pieces)
    with atomic_dir(out, overwrite) as tmp:
        S.save_proto(result.proto, tmp / "tokenizer.model")
        S.processor(tmp / "tokenizer.model")  # SentencePiece itself must accept the result
        write_hf_tokenizer(tmp / "tokenizer.model", tmp, **_base_hf_config(Path(base)))
        report = {"base": str(base), "add": [str(a) for a in add], "mode": mode,
                  "placement": placement if mode == "extend" else None, **result.summary()}
        write_json_atomic(tmp / "merge_report.json", report)
    return result

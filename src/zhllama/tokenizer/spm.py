"""Reading and writing SentencePiece model protobufs with clear errors."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from sentencepiece import sentencepiece_model_pb2 as sp_pb2

from ..errors import ZhllamaError

NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6
UNIGRAM, BPE = 1, 2


def resolve_sp_model(path: str | Path) -> Path:
    """A ``tokenizer.model`` file, or a folder holding one (a Hugging Face tokenizer folder)."""
    p = Path(path)
    if p.is_dir():
        cand = p / "tokenizer.model"
        if not cand.is_file():
            raise ZhllamaError(f"no tokenizer.model in {p}",
                               "give a SentencePiece .model file or a folder that holds tokenizer.model")
        return cand
    if not p.exists():
        raise ZhllamaError(f"tokenizer not found: {p}", "check the path")
    return p


def load_proto(path: str | Path) -> sp_pb2.ModelProto:
    """Parse a SentencePiece model file; a file that is not one raises a one-line error."""
    p = resolve_sp_model(path)
    proto = sp_pb2.ModelProto()
    try:
        proto.ParseFromString(p.read_bytes())
    except Exception:  # protobuf raises DecodeError or others on garbage
        raise ZhllamaError(f"{p} is not a SentencePiece model", "give the tokenizer.model file of a LLaMA-family model") from None
    if not proto.pieces or proto.trainer_spec.model_type not in (UNIGRAM, BPE):
        raise ZhllamaError(f"{p} is not a SentencePiece BPE or unigram model", "give the tokenizer.model file of a LLaMA-family model")
    return proto


def save_proto(proto: sp_pb2.ModelProto, path: str | Path) -> None:
    Path(path).write_bytes(proto.SerializeToString())


def processor(path_or_proto):
    """A ``SentencePieceProcessor`` from a path or an in-memory proto."""
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor()
    if isinstance(path_or_proto, sp_pb2.ModelProto):
        sp.LoadFromSerializedProto(path_or_proto.SerializeToString())
    else:
        sp.Load(str(resolve_sp_model(path_or_proto)))
    return sp


def tied_pieces(proto) -> int:
    """How many mergeable pieces share their score with another one (0: the fast files are exact).

    Mergeable = normal pieces of two or more characters of a BPE model.  Pieces made only of
    ``▁`` are left out: LLaMA gives all its whitespace-run pieces score -1e9, yet every run of
    spaces tokenizes the same either way (checked for runs of 1-129 spaces in many contexts).
    """
    if proto.trainer_spec.model_type != BPE:
        return 0
    scores = Counter(p.score for p in proto.pieces
                     if p.type == NORMAL and len(p.piece) > 1 and p.piece.strip("▁"))
    return sum(n for n in scores.values() if n > 1)

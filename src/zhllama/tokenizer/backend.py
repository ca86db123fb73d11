"""One seam for the two kinds of tokenizer zhllama extends: SentencePiece and byte-level BPE.

:func:`tokenizer_kind` tells which one a path holds; each kind has the same four operations,
so ``tokenizer merge``, ``tokenizer stats`` and ``export gguf`` never branch on the format
themselves:

* ``load()``: the tokenizer every stage uses (:func:`zhllama.tokenizer.load.load_tokenizer`);
* ``merge(add, out, **options)``: extend it with Chinese pieces (SentencePiece: on the protobuf,
  :mod:`zhllama.tokenizer.merge`; byte-level: :mod:`zhllama.tokenizer.bbpe_merge`);
* ``encoder()``: what ``tokenizer stats`` measures with (SentencePiece itself for a ``.model``);
* ``gguf_vocab(n_rows, config_ids)``: the GGUF vocabulary of a model folder
  (:mod:`zhllama.tokenizer.gguf_vocab`: llama.cpp's ``llama`` or ``gpt2`` tokenizer).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ZhllamaError


class SentencePieceKind:
    """A ``tokenizer.model`` file, or a folder holding one (its HF files are zhllama's exact ones)."""

    name = "sentencepiece"

    def __init__(self, path: Path):
        self.path = path

    def load(self):
        from .load import load_tokenizer

        return load_tokenizer(self.path)

    def merge(self, add: list, out, **options) -> dict:
        from .merge import merge_sentencepiece

        return merge_sentencepiece(self.path, add, out, **options)

    def encoder(self):
        from .encoders import SpTokenizer

        return SpTokenizer(self.path)

    def gguf_vocab(self, n_rows: int, config_ids: dict):
        from .gguf_vocab import sentencepiece_vocab

        return sentencepiece_vocab(self.path, n_rows, config_ids)


class ByteLevelKind:
    """A folder holding a byte-level BPE ``tokenizer.json`` (Llama-3, Qwen2), or that file itself."""

    name = "byte-bpe"

    def __init__(self, path: Path):
        self.path = path
        self.folder = path if path.is_dir() else path.parent

    def load(self):
        from .load import load_tokenizer

        return load_tokenizer(self.folder)

    def merge(self, add: list, out, **options) -> dict:
        from .bbpe_write import merge_byte_level

        return merge_byte_level(self.folder, add, out, **options)

    def encoder(self):
        from .encoders import HfTokenizer

        return HfTokenizer(self.folder)

    def gguf_vocab(self, n_rows: int, config_ids: dict):
        from .gguf_vocab import byte_level_vocab

        return byte_level_vocab(self.folder, n_rows, config_ids)


def tokenizer_kind(path: str | Path, role: str = "tokenizer"):
    """The kind of tokenizer at ``path``: ``tokenizer.model`` wins (zhllama's SentencePiece folders also
    carry a ``tokenizer.json``), else a byte-level BPE ``tokenizer.json`` (checked: a WordPiece, Unigram
    or other BPE there is a one-line error)."""
    from . import bbpe

    p = Path(path).expanduser()
    if not p.exists():
        raise ZhllamaError(f"{role} not found: {p}", "give a tokenizer folder or a tokenizer.model file")
    if (p.is_file() and p.name != "tokenizer.json") or (p / "tokenizer.model").is_file():
        return SentencePieceKind(p)
    if p.is_dir() and not (p / "tokenizer.json").is_file():
        raise ZhllamaError(f"no tokenizer.model or tokenizer.json in {p}",
                           "give a SentencePiece tokenizer.model or a folder with a Hugging Face tokenizer.json")
    data = bbpe.read_tokenizer_json(p)
    bbpe.check_byte_level(data, p, role)
    return ByteLevelKind(p)


def merge_tokenizers(base: str | Path, add: list[str | Path], out: str | Path, mode: str = "extend",
                     placement: str = "above", pad_token: bool = False, max_pieces: int | None = None,
                     overwrite: bool = False):
    """Extend ``base`` with the Chinese pieces of ``add`` into ``out``, whichever kind of tokenizer ``base`` is
    (:mod:`zhllama.tokenizer.backend`); returns the result, whose ``summary()`` is in ``merge_report.json``."""
    if not add:
        raise ZhllamaError("nothing to merge", "give at least one --add TOKENIZER")
    return tokenizer_kind(base, "--base").merge(add, out, mode=mode, placement=placement, pad_token=pad_token,
                                                max_pieces=max_pieces, overwrite=overwrite)


def open_tokenizer(path: str | Path):
    """A GGUF file through llama.cpp; SentencePiece or byte-level BPE through their kind's encoder
    (SentencePiece itself for a ``tokenizer.model``); any other
    Hugging Face folder through ``AutoTokenizer``."""
    from .encoders import GgufTokenizer, HfTokenizer

    p = Path(path)
    if p.is_file() and p.suffix == ".gguf":
        return GgufTokenizer(p)
    if p.is_file() or (p / "tokenizer.model").is_file() or _is_byte_level_folder(p):
        return tokenizer_kind(p).encoder()
    if p.is_dir():
        return HfTokenizer(p)
    raise ZhllamaError(f"tokenizer not found: {p}", "give a .model or .gguf file or a tokenizer folder")


def _is_byte_level_folder(p: Path) -> bool:
    from . import bbpe

    return (p / "tokenizer.json").is_file() and bbpe.is_byte_level(bbpe.read_tokenizer_json(p))

"""Exact Hugging Face tokenizer files for a SentencePiece model.

Loading the folder with transformers' ``AutoTokenizer`` must give exactly the ids SentencePiece gives, or
training, inference and GGUF export silently disagree.  The stock conversion in transformers does
not (checked with 5.23): it ranks BPE merges by piece *id* while SentencePiece ranks them by piece
*score* (LLaMA's whitespace-run pieces such as ``▁▁`` have low ids but score -1e9), and its
Metaspace pre-tokenizer drops the dummy-prefix ``▁`` before a leading space.  So the
``tokenizers`` pipeline is built here by hand:

* normalizer: ``Prepend("▁")`` (when the model adds a dummy prefix) then ``Replace(" ", "▁")`` —
  what SentencePiece's identity normalizer with ``escape_whitespaces`` does; no pre-tokenizer,
  because SentencePiece BPE does not pre-split either;
* BPE merges: every split ``a + b`` of every normal piece, ranked by the piece's score (highest
  first), with byte fallback and fused unknowns; unigram models map onto ``tokenizers``' Unigram;
* control / user-defined pieces become added tokens.  ``split_special_tokens`` is false so a chat
  template's ``{{ bos_token }}`` is BOS; zhllama encodes text with it true (``templates.encode_plain_text``),
  so ``<s>`` typed in text stays characters, as in SentencePiece.

The tokenizer class is written as ``PreTrainedTokenizerFast`` so transformers loads
``tokenizer.json`` verbatim instead of rebuilding a LLaMA pipeline of its own.

One case no merge list can reproduce: mergeable pieces with *equal* scores (Chinese-LLaMA-2's added
pieces), which SentencePiece ranks by position in the text.  The file is still written for other
tools, but zhllama's loader then encodes with SentencePiece (:mod:`zhllama.tokenizer.exact`).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, processors

from ..errors import ZhllamaError
from ..io import atomic_file, write_json_atomic
from . import spm as S

log = logging.getLogger(__name__)


def _normalizer(proto) -> normalizers.Normalizer | None:
    spec = proto.normalizer_spec
    steps = []
    if spec.name not in ("identity", "") and spec.precompiled_charsmap:
        steps.append(normalizers.Precompiled(spec.precompiled_charsmap))
    if spec.remove_extra_whitespaces:
        steps += [normalizers.Strip(left=True, right=True), normalizers.Replace(Regex(" {2,}"), " ")]
    if spec.add_dummy_prefix:
        steps.append(normalizers.Prepend("▁"))
    if spec.escape_whitespaces:
        steps.append(normalizers.Replace(" ", "▁"))
    return normalizers.Sequence(steps)


def _bpe_model(proto) -> models.BPE:
    vocab: dict[str, int] = {}
    normal: list[tuple[float, int, str]] = []
    for i, p in enumerate(proto.pieces):
        vocab[p.piece] = i
        if p.type == S.NORMAL:
            normal.append((-p.score, i, p.piece))
    normal.sort()  # highest score first, then lowest id (SentencePiece's own tie-break is position)
    merges: list[tuple[str, str]] = []
    seen: set[tuple[str, str]] = set()
    for _, _, piece in normal:
        for k in range(1, len(piece)):
            left, right = piece[:k], piece[k:]
            if left in vocab and right in vocab and (left, right) not in seen:
                seen.add((left, right))
                merges.append((left, right))
    unk = next((p.piece for p in proto.pieces if p.type == S.UNKNOWN), None)
    return models.BPE(vocab=vocab, merges=merges, unk_token=unk, fuse_unk=True,
                      byte_fallback=proto.trainer_spec.byte_fallback, dropout=None)


def _unigram_model(proto) -> models.Unigram:
    vocab = [(p.piece, p.score if p.type in (S.NORMAL, S.USER_DEFINED) else 0.0) for p in proto.pieces]
    unk_id = next((i for i, p in enumerate(proto.pieces) if p.type == S.UNKNOWN), 0)
    return models.Unigram(vocab, unk_id=unk_id, byte_fallback=proto.trainer_spec.byte_fallback)


def decoder_for(proto) -> decoders.Decoder:
    """Pieces -> text as SentencePiece decodes: ``▁`` is a space, byte pieces join into UTF-8, one dummy ``▁`` goes."""
    steps = [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()]
    if proto.normalizer_spec.add_dummy_prefix:
        steps.append(decoders.Strip(content=" ", left=1, right=0))
    return decoders.Sequence(steps)


def build_tokenizer(proto, add_bos: bool = True, add_eos: bool = False) -> Tokenizer:
    """A ``tokenizers.Tokenizer`` that reproduces SentencePiece's ids for ``proto``."""
    model = _bpe_model(proto) if proto.trainer_spec.model_type == S.BPE else _unigram_model(proto)
    tok = Tokenizer(model)
    tok.normalizer = _normalizer(proto)
    tok.pre_tokenizer = None
    tok.decoder = decoder_for(proto)
    specials = []
    for p in proto.pieces:
        if p.type in (S.CONTROL, S.UNKNOWN):
            specials.append(AddedToken(p.piece, special=True, normalized=False))
        elif p.type == S.USER_DEFINED:
            specials.append(AddedToken(p.piece, special=p.piece.startswith("<") and p.piece.endswith(">"), normalized=False))
    tok.add_special_tokens([t for t in specials if t.special])
    tok.add_tokens([t for t in specials if not t.special])
    bos = _piece_for(proto, proto.trainer_spec.bos_id)
    eos = _piece_for(proto, proto.trainer_spec.eos_id)
    single, pair, special = "$A:0", "$A:0 $B:1", []
    if add_bos and bos:
        single, pair = f"{bos}:0 {single}", f"{bos}:0 $A:0 {bos}:1 $B:1"
        special.append((bos, proto.trainer_spec.bos_id))
    if add_eos and eos:
        single, pair = f"{single} {eos}:0", f"{pair} {eos}:1"
        special.append((eos, proto.trainer_spec.eos_id))
    tok.post_processor = processors.TemplateProcessing(single=single, pair=pair, special_tokens=special)
    return tok


def _piece_for(proto, idx: int) -> str | None:
    return proto.pieces[idx].piece if 0 <= idx < len(proto.pieces) else None


def write_hf_tokenizer(sp_model: str | Path, out_dir: str | Path, add_bos: bool = True, add_eos: bool = False,
                       model_max_length: int | None = None, template: str = "none",
                       chat_template: str | None = None) -> Path:
    """Write ``tokenizer.model`` + ``tokenizer.json`` + configs into ``out_dir`` (created if needed).

    The folder loads with transformers' ``AutoTokenizer`` and keeps ``tokenizer.model`` for
    tools that read SentencePiece (llama.cpp's converter, GGUF export).  Its ``chat_template`` is
    ``chat_template`` (Jinja) when given, else that of the zhllama template ``template`` (``none``
    for a bare tokenizer).  When the model's mergeable pieces tie on score, ``tokenizer.json`` is
    not exact; zhllama's loader then encodes with SentencePiece (:mod:`zhllama.tokenizer.exact`).
    """
    src = S.resolve_sp_model(sp_model)
    proto = S.load_proto(src)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if src.resolve() != (out / "tokenizer.model").resolve():
        shutil.copyfile(src, out / "tokenizer.model")
    tok = build_tokenizer(proto, add_bos=add_bos, add_eos=add_eos)
    with atomic_file(out / "tokenizer.json") as tmp:
        tok.save(str(tmp))
    if S.tied_pieces(proto):
        log.info("%s: %d mergeable pieces share a score; tokenizer.json is not exact for them, zhllama encodes "
                 "with SentencePiece (docs/tokenizer.md#tied-scores)", src, S.tied_pieces(proto))
    config = hf_config(proto, add_bos, add_eos, model_max_length, template, chat_template)
    write_json_atomic(out / "tokenizer_config.json", config)
    write_json_atomic(out / "special_tokens_map.json", _special_tokens(proto))
    return out


def _special_tokens(proto) -> dict[str, str]:
    pieces = {p.piece for p in proto.pieces}
    names = {"bos_token": proto.trainer_spec.bos_id, "eos_token": proto.trainer_spec.eos_id,
             "unk_token": proto.trainer_spec.unk_id}
    special = {k: _piece_for(proto, v) for k, v in names.items() if _piece_for(proto, v)}
    pad = _piece_for(proto, proto.trainer_spec.pad_id) or ("<pad>" if "<pad>" in pieces else None)
    if pad:
        special["pad_token"] = pad
    return special


def hf_config(proto, add_bos: bool = True, add_eos: bool = False, model_max_length: int | None = None,
              template: str = "none", chat_template: str | None = None) -> dict:
    """The ``tokenizer_config.json`` of a SentencePiece model's folder (also the exact tokenizer's settings)."""
    from ..templates import get_template

    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "add_bos_token": add_bos,
        "add_eos_token": add_eos,
        "clean_up_tokenization_spaces": False,
        "legacy": False,
        # the chat template's {{ bos_token }} must become BOS; zhllama's own text encoding
        # (templates.encode_plain_text) still reads "<s>" in text as characters, as SentencePiece does
        "split_special_tokens": False,
        "model_max_length": model_max_length or 1_000_000_000,
        **_special_tokens(proto),
        "chat_template": chat_template or get_template(template).jinja(" " if proto.normalizer_spec.add_dummy_prefix else ""),
        **(_sentencepiece_backend(add_bos, add_eos) if S.tied_pieces(proto) else {}),
    }


def _sentencepiece_backend(add_bos: bool, add_eos: bool) -> dict:
    """Config keys that make plain ``AutoTokenizer`` encode with transformers 5's ``SentencePieceBackend``.

    For a model whose mergeable pieces tie on score (Chinese-LLaMA-2's) no ``tokenizer.json`` gives
    SentencePiece's ids; this class encodes with SentencePiece itself.  ``special_tokens_pattern`` is how
    it adds BOS/EOS, ``legacy`` keeps the dummy prefix on every text.  (Its decoder leaves byte pieces
    such as ``<0xF0>`` as text; zhllama's own loader decodes them.)"""
    pattern = {(True, True): "bos_eos", (True, False): "bos", (False, True): "eos"}.get((add_bos, add_eos), "none")
    return {"tokenizer_class": "SentencePieceBackend", "special_tokens_pattern": pattern, "legacy": True}


TOKENIZER_FILES = ("tokenizer.model", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                   "chat_template.jinja")


def copy_tokenizer_files(src_dir: str | Path, dst_dir: str | Path) -> None:
    """Copy a tokenizer folder's files, ``tokenizer.model`` included.

    ``save_pretrained`` of a fast tokenizer does not write ``tokenizer.model``; every stage that
    writes a model folder copies the files with this instead so GGUF export keeps working.
    """
    src, dst = Path(src_dir), Path(dst_dir)
    dst.mkdir(parents=True, exist_ok=True)
    found = False
    for name in TOKENIZER_FILES:
        if (src / name).is_file():
            shutil.copyfile(src / name, dst / name)
            found = True
    if not found:
        raise ZhllamaError(f"no tokenizer files in {src}", "give a folder written by `zhllama tokenizer merge`")
    exact_for_transformers(dst)


def exact_for_transformers(folder: str | Path) -> None:
    """Make plain ``AutoTokenizer`` give zhllama's ids for a folder holding ``tokenizer.model``.

    A ``tokenizer.model`` without ``tokenizer.json`` (bare, or with only a ``tokenizer_config.json`` as
    the published Chinese-LLaMA-2 folder) gets zhllama's exact Hugging Face files, its BOS/EOS settings
    and chat template kept: transformers' own conversion adds no BOS and ranks merges by id.  A model
    with tied scores gets the config that selects the SentencePiece backend (:func:`_sentencepiece_backend`)."""
    from ..io import read_json

    folder = Path(folder)
    sp = folder / "tokenizer.model"
    if not sp.is_file():
        return
    config_path = folder / "tokenizer_config.json"
    config = read_json(config_path, "fix or remove the file") if config_path.is_file() else {}
    if not (folder / "tokenizer.json").is_file():
        write_hf_tokenizer(sp, folder, add_bos=config.get("add_bos_token", True), add_eos=config.get("add_eos_token", False),
                           model_max_length=config.get("model_max_length"), chat_template=config.get("chat_template"))
        return
    if S.tied_pieces(S.load_proto(sp)) and config.get("tokenizer_class") != "SentencePieceBackend":
        keys = _sentencepiece_backend(config.get("add_bos_token", True), config.get("add_eos_token", False))
        write_json_atomic(config_path, {**config, **keys})


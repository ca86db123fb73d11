"""A model folder's vocabulary as the data of GGUF's ``tokenizer.ggml.*`` keys (written by zhllama.export.vocab).

Two kinds, as llama.cpp has them:

* ``llama`` (SentencePiece): llama.cpp re-implements SentencePiece from the piece list, scores and
  piece types stored in the file, so they are taken verbatim from ``tokenizer.model``;
* ``gpt2`` (byte-level BPE: Llama-3, Qwen2 and their Chinese extensions): the tokens in the byte
  alphabet, their types (added special tokens are control tokens), the ranked merges and the
  pre-tokenizer name (``llama-bpe``, ``qwen2``) from :func:`zhllama.tokenizer.bbpe.llama_cpp_pre`.

Embedding rows past the last token (a vocabulary padded to a multiple of 64, or tokens added on
the Hugging Face side such as Chinese-Alpaca's ``<pad>``) are filled the way llama.cpp's converter
fills them: ``[PAD{n}]`` tokens of type unused, then the added tokens from ``added_tokens.json`` /
``tokenizer_config.json`` put in place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ZhllamaError
from ..io import read_json
from . import spm as S


@dataclass
class GGUFVocab:
    tokens: list[str]
    scores: list[float] | None  # SentencePiece only
    types: list[int]
    add_space_prefix: bool
    model: str = "llama"  # tokenizer.ggml.model: llama (SentencePiece) or gpt2 (byte-level BPE)
    pre: str = "default"  # tokenizer.ggml.pre
    merges: list[str] | None = None  # gpt2 only: "left right", highest priority first
    special_ids: dict[str, int] = field(default_factory=dict)  # bos/eos/unk/pad -> id
    add_bos: bool | None = None
    add_eos: bool | None = None
    chat_template: str | None = None


def _gguf_token_type(piece_type: int) -> int:
    """SentencePiece piece type -> GGUF TokenType (same names; mapped by name, not by number)."""
    from gguf import TokenType

    return {S.NORMAL: TokenType.NORMAL, S.UNKNOWN: TokenType.UNKNOWN, S.CONTROL: TokenType.CONTROL,
            S.USER_DEFINED: TokenType.USER_DEFINED, S.UNUSED: TokenType.UNUSED,
            S.BYTE: TokenType.BYTE}.get(piece_type, TokenType.NORMAL)


def _read_json(path: Path) -> dict:
    if not path.is_file():
        return {}
    return read_json(path, "fix or re-save the tokenizer files")


def _token_text(value) -> str | None:
    """A special token in tokenizer_config.json is a string or an AddedToken dict."""
    if isinstance(value, dict):
        return value.get("content")
    return value if isinstance(value, str) else None


def _added_tokens(model_dir: Path, tok_config: dict) -> dict[int, tuple[str, bool]]:
    """id -> (text, special) for tokens added on the Hugging Face side."""
    added = {int(i): (str(t), True) for t, i in _read_json(model_dir / "added_tokens.json").items()}
    for i, tok in (tok_config.get("added_tokens_decoder") or {}).items():
        added[int(i)] = (tok["content"], bool(tok.get("special", False)))
    return added


def _place_added(vocab: GGUFVocab, n_pieces: int, added: dict[int, tuple[str, bool]]) -> None:
    from gguf import TokenType

    for i, (text, special) in sorted(added.items()):
        if i < n_pieces:
            continue  # a SentencePiece piece already; its own type wins
        if i >= len(vocab.tokens):
            raise ZhllamaError(f"added token {text!r} has id {i} but the model has {len(vocab.tokens)} embedding rows",
                               "resize the embeddings to the tokenizer (zhllama model resize) before exporting")
        vocab.tokens[i] = text
        if vocab.scores is not None:
            vocab.scores[i] = -1000.0
        vocab.types[i] = TokenType.CONTROL if special else TokenType.USER_DEFINED


def _chat_template(model_dir: Path, tok_config: dict) -> str | None:
    """The template Hugging Face loads: ``chat_template.jinja`` first, then tokenizer_config.json's."""
    jinja = model_dir / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8") or None
    template = tok_config.get("chat_template")
    if isinstance(template, list):  # named templates: llama.cpp uses the default one
        template = next((t["template"] for t in template if t.get("name") == "default"), None)
    return template or None


def _special_ids(vocab: GGUFVocab, tok_config: dict, config_ids: dict[str, int | None],
                 own_ids: dict[str, int | None]) -> dict[str, int]:
    """bos/eos/unk/pad: the token named in tokenizer_config.json, else config.json's id, else the
    tokenizer's own (the SentencePiece trainer's ids, a byte-level post-processor's BOS)."""
    index = {t: i for i, t in enumerate(vocab.tokens)}
    out = {}
    for name in ("bos", "eos", "unk", "pad"):
        text = _token_text(tok_config.get(f"{name}_token"))
        ids = [index.get(text), config_ids.get(name), own_ids.get(name)]
        chosen = next((i for i in ids if i is not None and 0 <= i < len(vocab.tokens)), None)
        if chosen is not None:
            out[name] = chosen
    return out


def sentencepiece_vocab(model_dir: Path, n_rows: int, config_ids: dict[str, int | None]) -> GGUFVocab:
    """The GGUF vocabulary of a folder holding ``tokenizer.model``, for an embedding matrix of ``n_rows`` rows."""
    from gguf import TokenType

    sp_path = model_dir / "tokenizer.model"
    if not sp_path.is_file():
        raise ZhllamaError(f"no tokenizer.model in {model_dir}",
                           "copy the SentencePiece tokenizer.model of the model's tokenizer into the folder")
    proto = S.load_proto(sp_path)
    n_pieces = len(proto.pieces)
    if n_pieces > n_rows:
        raise ZhllamaError(f"{sp_path} has {n_pieces} pieces but the model's embeddings have only {n_rows} rows",
                           "resize the embeddings to the tokenizer (zhllama model resize) or use the matching tokenizer")
    vocab = GGUFVocab(tokens=[f"[PAD{i}]" for i in range(n_rows)], scores=[-1000.0] * n_rows,
                      types=[int(TokenType.UNUSED)] * n_rows,
                      add_space_prefix=bool(proto.normalizer_spec.add_dummy_prefix))
    for i, p in enumerate(proto.pieces):
        vocab.tokens[i], vocab.scores[i], vocab.types[i] = p.piece, p.score, int(_gguf_token_type(p.type))
    tok_config = _read_json(model_dir / "tokenizer_config.json")
    _place_added(vocab, n_pieces, _added_tokens(model_dir, tok_config))
    spec = proto.trainer_spec
    own = {"bos": spec.bos_id, "eos": spec.eos_id, "unk": spec.unk_id, "pad": spec.pad_id}
    vocab.special_ids = _special_ids(vocab, tok_config, config_ids, own)
    vocab.add_bos = tok_config.get("add_bos_token")
    vocab.add_eos = tok_config.get("add_eos_token")
    vocab.chat_template = _chat_template(model_dir, tok_config)
    return vocab


def byte_level_vocab(model_dir: Path, n_rows: int, config_ids: dict[str, int | None]) -> GGUFVocab:
    """The GGUF (``gpt2``) vocabulary of a folder holding a byte-level BPE ``tokenizer.json``.

    Token types as llama.cpp's converter gives them: added special tokens are control tokens,
    other added tokens user-defined, the rest normal; rows without a token are ``[PAD{n}]``, unused.
    """
    from gguf import TokenType

    from . import bbpe

    data = bbpe.read_tokenizer_json(model_dir)
    bbpe.check_byte_level(data, model_dir, "tokenizer")
    tokens = bbpe.id_to_token(data)
    if max(tokens) >= n_rows:
        raise ZhllamaError(f"{model_dir}: the tokenizer has ids up to {max(tokens):,} but the model's embeddings "
                           f"have only {n_rows:,} rows",
                           "resize the embeddings to the tokenizer (zhllama model resize) or use the matching tokenizer")
    vocab = GGUFVocab(tokens=[f"[PAD{i}]" for i in range(n_rows)], scores=None, types=[int(TokenType.UNUSED)] * n_rows,
                      add_space_prefix=False, model="gpt2", pre=bbpe.llama_cpp_pre(data, model_dir / "tokenizer.json"),
                      merges=[f"{a} {b}" for a, b in bbpe.merges_of(data)])
    for i, t in tokens.items():
        vocab.tokens[i], vocab.types[i] = t, int(TokenType.NORMAL)
    for t in data.get("added_tokens") or []:
        vocab.types[int(t["id"])] = int(TokenType.CONTROL if t.get("special") else TokenType.USER_DEFINED)
    tok_config = _read_json(model_dir / "tokenizer_config.json")
    _place_added(vocab, max(tokens) + 1, _added_tokens(model_dir, tok_config))
    post_bos = next((int(t["id"]) for t in data.get("added_tokens") or []
                     if bbpe.adds_bos(data) and t["content"] == _first_special(data)), None)
    vocab.special_ids = _special_ids(vocab, tok_config, config_ids, {"bos": post_bos})
    add_bos = tok_config.get("add_bos_token")
    vocab.add_bos = add_bos if isinstance(add_bos, bool) else bbpe.adds_bos(data)
    vocab.add_eos = bool(tok_config.get("add_eos_token", False))
    vocab.chat_template = _chat_template(model_dir, tok_config)
    return vocab


def _first_special(data: dict) -> str | None:
    """The special token a byte-level post-processor puts before the text (Llama-3's ``<|begin_of_text|>``)."""
    post = data.get("post_processor") or {}
    steps = post.get("processors") or [] if post.get("type") == "Sequence" else [post]
    for step in steps:
        single = step.get("single") or [] if step.get("type") == "TemplateProcessing" else []
        if single and "SpecialToken" in single[0]:
            return single[0]["SpecialToken"]["id"]
    return None

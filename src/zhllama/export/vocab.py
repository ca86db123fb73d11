"""The SentencePiece vocabulary as GGUF ``tokenizer.ggml.*`` keys (llama.cpp's "llama" tokenizer).

llama.cpp re-implements SentencePiece from the piece list, scores and piece types stored in the
file, so they are taken verbatim from ``tokenizer.model``.  Embedding rows past the last piece (a
vocabulary padded to a multiple of 64, or tokens added on the Hugging Face side such as
Chinese-Alpaca's ``<pad>``) are filled the way llama.cpp's converter fills them: ``[PAD{n}]``
pieces of type unused, then the added tokens from ``added_tokens.json`` /
``tokenizer_config.json`` put in place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ZhllamaError
from ..io import read_json
from ..tokenizer import spm as S


@dataclass
class GGUFVocab:
    tokens: list[str]
    scores: list[float]
    types: list[int]
    add_space_prefix: bool
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


def _special_ids(vocab: GGUFVocab, tok_config: dict, proto, config_ids: dict[str, int | None]) -> dict[str, int]:
    """bos/eos/unk/pad: the token named in tokenizer_config.json, else config.json's id, else the
    SentencePiece trainer's id."""
    index = {t: i for i, t in enumerate(vocab.tokens)}
    spec = proto.trainer_spec
    sp_ids = {"bos": spec.bos_id, "eos": spec.eos_id, "unk": spec.unk_id, "pad": spec.pad_id}
    out = {}
    for name in ("bos", "eos", "unk", "pad"):
        text = _token_text(tok_config.get(f"{name}_token"))
        ids = [index.get(text), config_ids.get(name), sp_ids[name]]
        chosen = next((i for i in ids if i is not None and 0 <= i < len(vocab.tokens)), None)
        if chosen is not None:
            out[name] = chosen
    return out


def build_vocab(model_dir: Path, n_rows: int, config_ids: dict[str, int | None]) -> GGUFVocab:
    """The GGUF vocabulary for a model folder whose embedding matrix has ``n_rows`` rows."""
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
    vocab.special_ids = _special_ids(vocab, tok_config, proto, config_ids)
    vocab.add_bos = tok_config.get("add_bos_token")
    vocab.add_eos = tok_config.get("add_eos_token")
    vocab.chat_template = _chat_template(model_dir, tok_config)
    return vocab


def add_vocab_keys(writer, vocab: GGUFVocab) -> None:
    writer.add_tokenizer_model("llama")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(vocab.tokens)
    writer.add_token_scores(vocab.scores)
    writer.add_token_types(vocab.types)
    writer.add_add_space_prefix(vocab.add_space_prefix)
    adders = {"bos": writer.add_bos_token_id, "eos": writer.add_eos_token_id,
              "unk": writer.add_unk_token_id, "pad": writer.add_pad_token_id}
    for name, token_id in vocab.special_ids.items():
        adders[name](token_id)
    if vocab.add_bos is not None:
        writer.add_add_bos_token(bool(vocab.add_bos))
    if vocab.add_eos is not None:
        writer.add_add_eos_token(bool(vocab.add_eos))
    if vocab.chat_template:
        writer.add_chat_template(vocab.chat_template)

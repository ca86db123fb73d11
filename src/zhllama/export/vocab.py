"""The vocabulary of a model folder as GGUF ``tokenizer.ggml.*`` keys.

What goes in is built by the tokenizer's kind (:mod:`zhllama.tokenizer.backend`,
:mod:`zhllama.tokenizer.gguf_vocab`): llama.cpp's ``llama`` tokenizer (SentencePiece pieces, scores,
types) or its ``gpt2`` one (byte-level BPE tokens, types, merges and the pre-tokenizer name).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ZhllamaError
from ..tokenizer import bbpe
from ..tokenizer.backend import tokenizer_kind
from ..tokenizer.gguf_vocab import GGUFVocab


def build_vocab(model_dir: Path, n_rows: int, config_ids: dict[str, int | None]) -> GGUFVocab:
    """The GGUF vocabulary for a model folder whose embedding matrix has ``n_rows`` rows."""
    model_dir = Path(model_dir)
    if not (model_dir / "tokenizer.model").is_file():
        hf = model_dir / "tokenizer.json"
        if not hf.is_file() or not bbpe.is_byte_level(bbpe.read_tokenizer_json(hf)):
            raise ZhllamaError(f"no tokenizer.model in {model_dir} (and no byte-level BPE tokenizer.json)",
                               "copy the model's tokenizer files into the folder: the SentencePiece tokenizer.model, "
                               "or the tokenizer.json of a byte-level BPE (Llama-3, Qwen2)")
    return tokenizer_kind(model_dir).gguf_vocab(n_rows, config_ids)


def add_vocab_keys(writer, vocab: GGUFVocab) -> None:
    writer.add_tokenizer_model(vocab.model)
    writer.add_tokenizer_pre(vocab.pre)
    writer.add_token_list(vocab.tokens)
    if vocab.scores is not None:
        writer.add_token_scores(vocab.scores)
    writer.add_token_types(vocab.types)
    if vocab.merges is not None:
        writer.add_token_merges(vocab.merges)
    if vocab.model == "llama":
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

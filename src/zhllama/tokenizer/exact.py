"""SentencePiece-exact tokenization for BPE models whose mergeable pieces tie on score.

SentencePiece BPE repeatedly merges the adjacent pair whose merged piece scores highest and
breaks a tie by position: the leftmost pair wins.  A Hugging Face BPE (``tokenizer.json``) has
no scores, only a ranked merge list, so tied pieces must be put in *some* fixed order, and then
the leftmost of two competing tied pairs can lose.  The official Chinese-LLaMA-2 tokenizer gives
its 23,296 added pieces score 0: ``充当前置`` is ``充当|前置`` for SentencePiece but ``充|当前|置``
for any merge list that ranks ``当前`` first.  No ranking can fix it (the winner depends on where
the pairs sit in the text), so for such models zhllama encodes with SentencePiece itself.

:func:`needs_sentencepiece` decides; :class:`SentencePieceTokenizer` is the tokenizer.  It
subclasses transformers' own SentencePiece backend (``SentencePieceBackend``, the base of the
slow tokenizers transformers 5 still ships), which gives the whole tokenizer API zhllama uses
(batched ``__call__``, padding, special and added tokens, ``split_special_tokens``,
``apply_chat_template``, ``decode``) over a ``SentencePieceProcessor``.  What it changes:

* text is always encoded with SentencePiece's dummy prefix (``legacy`` mode), as the fast files do;
* BOS/EOS follow ``add_bos_token``/``add_eos_token`` (the base class adds neither);
* decoding uses the fast files' decoder chain (byte fallback, one dummy ``▁`` stripped), so both
  paths decode ids identically — the base class joins pieces and leaves ``<0xE4>`` in the text;
* ``save_pretrained`` writes zhllama's tokenizer folder (:func:`zhllama.tokenizer.hf.write_hf_tokenizer`),
  so a saved folder loads the exact way again and other tools still find ``tokenizer.json``.
"""

from __future__ import annotations

from pathlib import Path

from transformers.tokenization_utils_sentencepiece import SentencePieceBackend

from ..errors import ZhllamaError
from . import spm as S


def needs_sentencepiece(proto) -> bool:
    """True when a ranked BPE merge list cannot reproduce SentencePiece's ids for ``proto``."""
    return S.tied_pieces(proto) > 0


class SentencePieceTokenizer(SentencePieceBackend):
    """A transformers tokenizer that encodes with SentencePiece: its ids are SentencePiece's, ties included."""

    model_input_names = ["input_ids", "attention_mask"]

    def __init__(self, vocab_file: str, add_bos_token: bool = True, add_eos_token: bool = False, **kwargs):
        from .hf import decoder_for

        kwargs.update(legacy=True, vocab_file=str(vocab_file))  # legacy: the dummy prefix on every text, as SentencePiece
        self.add_bos_token, self.add_eos_token = add_bos_token, add_eos_token
        kwargs["special_tokens_pattern"] = {(True, True): "bos_eos", (True, False): "bos",
                                            (False, True): "eos"}.get((add_bos_token, add_eos_token), "none")
        super().__init__(**kwargs)
        self._decoder = decoder_for(S.load_proto(vocab_file))

    def _encode_plus(self, text, text_pair=None, add_special_tokens: bool = True, **kwargs):
        """A batch of plain texts read as SentencePiece reads them goes to SentencePiece in one call.

        That is how zhllama encodes corpora (``split_special_tokens=True``, no padding or
        truncation); the base class's per-text Python path is ~10x slower.  Anything else takes it.
        """
        if not self._plain_batch(text, text_pair, kwargs):
            return super()._encode_plus(text, text_pair, add_special_tokens, **kwargs)
        from transformers import BatchEncoding

        ids = self.sp_model.encode(list(text))
        if add_special_tokens:
            ids = [self.build_inputs_with_special_tokens(x) for x in ids]
        out = {"input_ids": ids}
        if kwargs.get("return_attention_mask") is not False:
            out["attention_mask"] = [[1] * len(x) for x in ids]
        return BatchEncoding(out)

    def _plain_batch(self, text, text_pair, kwargs: dict) -> bool:
        from transformers.tokenization_utils_base import PaddingStrategy, TruncationStrategy

        defaults = {"padding_strategy": PaddingStrategy.DO_NOT_PAD, "truncation_strategy": TruncationStrategy.DO_NOT_TRUNCATE,
                    "max_length": None, "stride": 0, "is_split_into_words": False, "pad_to_multiple_of": None,
                    "padding_side": None, "return_tensors": None, "return_token_type_ids": None,
                    "return_attention_mask": None, "return_overflowing_tokens": False,
                    "return_special_tokens_mask": False, "return_offsets_mapping": False, "return_length": False, "verbose": True,
                    "split_special_tokens": self.split_special_tokens}
        allowed = {"return_attention_mask": (None, True, False), "split_special_tokens": (True,), "verbose": (True, False)}
        return (isinstance(text, (list, tuple)) and text_pair is None and all(isinstance(t, str) for t in text)
                and set(kwargs) <= set(defaults)
                and all(kwargs.get(k, v) in allowed.get(k, (v,)) for k, v in defaults.items()))

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        return self._decoder.decode(tokens)

    def encode_normalized(self, piece: str) -> list[int]:
        """Ids of a string already in SentencePiece's space (``▁`` for a space), with no dummy prefix added."""
        if not hasattr(self, "_raw_sp"):
            proto = S.sp_pb2.ModelProto.FromString(self.sp_model.serialized_model_proto())
            proto.normalizer_spec.add_dummy_prefix = False
            self._raw_sp = S.processor(proto)
        return self._raw_sp.encode(piece)

    def save_pretrained(self, save_directory, **kwargs) -> tuple[str, ...]:
        """zhllama's tokenizer folder (``tokenizer.model`` + ``tokenizer.json`` + configs), chat template kept."""
        from .hf import TOKENIZER_FILES, write_hf_tokenizer

        from ..io import read_json, write_json_atomic

        out = write_hf_tokenizer(self.vocab_file, save_directory, add_bos=self.add_bos_token,
                                 add_eos=self.add_eos_token, model_max_length=self.model_max_length,
                                 chat_template=self.chat_template)
        added = {str(i): t.__getstate__() for i, t in self.added_tokens_decoder.items() if i >= self.vocab_size}
        if added:  # tokens beyond the pieces, where transformers (and zhllama's loader) read them
            config = read_json(out / "tokenizer_config.json", "re-save the tokenizer")
            write_json_atomic(out / "tokenizer_config.json", {**config, "added_tokens_decoder": added})
        return tuple(str(out / name) for name in TOKENIZER_FILES if (out / name).is_file())


def load_sentencepiece_tokenizer(sp_model: str | Path, config: dict, added: list[tuple[int, str, bool]] = ()):
    """:class:`SentencePieceTokenizer` for ``sp_model`` with a folder's ``tokenizer_config.json`` settings.

    ``added`` are tokens the folder adds beyond the SentencePiece pieces, as ``(id, text, special)``.
    """
    from .hf import hf_config

    proto = S.load_proto(sp_model)
    settings = hf_config(proto, add_bos=config.get("add_bos_token", True), add_eos=config.get("add_eos_token", False),
                         model_max_length=config.get("model_max_length"),
                         chat_template=config.get("chat_template"))
    settings.pop("tokenizer_class")
    tok = SentencePieceTokenizer(vocab_file=str(S.resolve_sp_model(sp_model)), **settings)
    for i, text, special in sorted(added):
        if i < len(proto.pieces):
            continue  # a piece already (its special status comes from the config's token names)
        if tok.add_tokens([text], special_tokens=special) and tok.convert_tokens_to_ids(text) != i:
            raise ZhllamaError(f"added token {text!r} has id {i} in the tokenizer files but would get "
                               f"{tok.convert_tokens_to_ids(text)} after the {len(proto.pieces):,} SentencePiece pieces",
                               "re-save the tokenizer so that added tokens follow the pieces without gaps")
    return tok

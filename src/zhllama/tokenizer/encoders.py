"""What ``tokenizer stats`` measures with: one encoder per kind of tokenizer file, each with
``encode_batch``, ``decode``, ``vocab_size`` and ``unk_id`` (:func:`zhllama.tokenizer.backend.open_tokenizer` picks one)."""

from __future__ import annotations

from pathlib import Path

from ..errors import ZhllamaError
from . import spm as S


class SpTokenizer:
    def __init__(self, path: Path):
        self.sp = S.processor(S.load_proto(path))  # load_proto: a one-line error for a non-model
        self.vocab_size = self.sp.get_piece_size()
        self.unk_id = self.sp.unk_id()

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return self.sp.encode(texts)

    def decode(self, ids: list[int]) -> str:
        return self.sp.decode(ids)


class HfTokenizer:
    def __init__(self, path: Path):
        from .load import load_tokenizer

        self.tok = load_tokenizer(path)
        self.vocab_size = len(self.tok)
        self.unk_id = self.tok.unk_token_id

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return self.tok(texts, add_special_tokens=False, split_special_tokens=True)["input_ids"]  # as SentencePiece

    def decode(self, ids: list[int]) -> str:
        return self.tok.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)


class GgufTokenizer:
    """The vocabulary of a GGUF file, tokenized by llama.cpp itself (llama-cpp-python, vocabulary only)."""

    def __init__(self, path: Path):
        try:
            import llama_cpp
        except ImportError:
            raise ZhllamaError(f"{path}: measuring a GGUF vocabulary needs llama-cpp-python",
                               "pip install llama-cpp-python, or give the Hugging Face tokenizer folder") from None
        try:
            self.llm = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
        except ValueError as e:
            raise ZhllamaError(f"llama.cpp cannot read {path}: {e}", "give a GGUF file written by llama.cpp or zhllama") from None
        self.vocab_size = self.llm.n_vocab()
        self.unk_id = None

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [self.llm.tokenize(t.encode("utf-8"), add_bos=False, special=False) for t in texts]

    def decode(self, ids: list[int]) -> str:
        return self.llm.detokenize(ids).decode("utf-8", errors="replace")

"""The GGUF's own vocabulary and chat template, for ``--engine llamacpp``.

A GGUF file carries its tokenizer and its chat template; there may be no Hugging Face folder next
to it.  :class:`GgufTokenizer` gives llama.cpp's tokenizer the few methods zhllama's engine calls on
a tokenizer (``__call__`` for text, ``decode`` for the streamed text, the special ids), so prompts,
trimming, stop strings and byte-safe streaming are the engine's own code on both engines.  For a
file written by ``zhllama export gguf`` the ids equal the Hugging Face tokenizer's (tested in
tests/export/test_export_llamacpp.py).

:func:`gguf_template` picks the chat template: ``--template`` when given; else the file's
``tokenizer.chat_template`` when it is one of zhllama's (its Jinja form, as export writes it), so the
conversation is rendered by zhllama's segments exactly as in training; else the file's Jinja
template rendered as llama-cpp-python and Hugging Face render it (a sandboxed Jinja environment),
its special tokens parsed; a file without a template continues raw text (``none``).
"""

from __future__ import annotations

import ctypes
from typing import Sequence

from ..errors import ZhllamaError
from ..templates import TEMPLATES, ChatTemplate, get_template, split_turns


class GgufTokenizer:
    """llama.cpp's tokenizer of a loaded model, with the Hugging Face calls zhllama's engine makes."""

    def __init__(self, llama_cpp, vocab):
        self._lib = llama_cpp
        self.vocab = vocab
        self.n_vocab = int(llama_cpp.llama_vocab_n_tokens(vocab))
        self.bos_token_id = added_bos(llama_cpp, vocab)
        self.eos_token_id = _token_or_none(llama_cpp.llama_vocab_eos(vocab))
        self.pad_token_id = _token_or_none(llama_cpp.llama_vocab_pad(vocab))
        self.unk_token_id = None  # never a special token's id (zhllama.templates.special_token_id)
        self.space_prefix = llama_cpp.llama_vocab_type(vocab) == llama_cpp.LLAMA_VOCAB_TYPE_SPM
        self._pieces: dict[int, tuple[bytes, int]] = {}  # token -> (its bytes, its attributes)

    def __len__(self) -> int:
        return self.n_vocab

    def token_text(self, token: int | None) -> str:
        if token is None:
            return ""
        return self._lib.llama_vocab_get_text(self.vocab, token).decode("utf-8", errors="replace")

    def convert_ids_to_tokens(self, ids):
        """The vocabulary's text of a token (or of each of a list), as Hugging Face's method gives it
        (e.g. SentencePiece's ``▁`` prefix), which the templates read."""
        return self.token_text(ids) if isinstance(ids, int) else [self.token_text(int(i)) for i in ids]

    def convert_tokens_to_ids(self, token: str) -> int | None:
        """The id of a token given by its text (a special token such as ``<|start_header_id|>``), else None."""
        ids = self.encode(token, parse_special=True)
        return ids[0] if len(ids) == 1 and self.token_text(ids[0]) == token else None

    def encode(self, text: str, parse_special: bool = False) -> list[int]:
        """``text``'s ids without BOS/EOS; ``parse_special`` reads ``<s>`` and the like as their tokens."""
        data = text.encode("utf-8")
        size = len(data) + 8
        while True:
            buf = (self._lib.llama_token * size)()
            n = self._lib.llama_tokenize(self.vocab, data, len(data), buf, size, False, parse_special)
            if n >= 0:
                return list(buf[:n])
            size = -n

    def __call__(self, text: str, add_special_tokens: bool = False, split_special_tokens: bool = True) -> dict:
        if add_special_tokens:  # zhllama adds BOS itself (text_prompt, the templates' BOS segments)
            raise ValueError("GgufTokenizer adds no special tokens")
        return {"input_ids": self.encode(text, parse_special=not split_special_tokens)}

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True, clean_up_tokenization_spaces: bool = False) -> str:
        """The text of ``ids`` as Hugging Face's SentencePiece decoder gives it.

        Written here rather than through ``llama_detokenize`` because the two differ on invalid UTF-8,
        which the engine's stream depends on: Hugging Face's ``ByteFallback`` turns a run of byte
        tokens that is not valid UTF-8 into one U+FFFD per token (so the stream waits for the rest of
        a character), where llama.cpp decodes the valid bytes of the run.  The one leading space of
        SentencePiece's dummy prefix is dropped, as both do.
        """
        parts: list[str] = []
        text, run = bytearray(), []
        for tok in ids:
            piece, attr = self._piece(int(tok))
            if attr & self._lib.LLAMA_TOKEN_ATTR_CONTROL and skip_special_tokens:
                continue
            if attr & self._lib.LLAMA_TOKEN_ATTR_BYTE:
                if text:
                    parts.append(text.decode("utf-8", errors="replace"))
                    text = bytearray()
                run.append(piece)
                continue
            if run:
                parts.append(_byte_run(run))
                run = []
            text += piece
        parts += [_byte_run(run)] if run else []
        parts += [text.decode("utf-8", errors="replace")] if text else []
        out = "".join(parts)
        return out[1:] if self.space_prefix and out.startswith(" ") else out

    def _piece(self, tok: int) -> tuple[bytes, int]:
        hit = self._pieces.get(tok)
        if hit is None:
            buf = ctypes.create_string_buffer(64)
            n = self._lib.llama_token_to_piece(self.vocab, tok, buf, 64, 0, False)
            if n < 0:
                buf = ctypes.create_string_buffer(-n)
                n = self._lib.llama_token_to_piece(self.vocab, tok, buf, -n, 0, False)
            hit = self._pieces[tok] = (buf.raw[:n], int(self._lib.llama_vocab_get_attr(self.vocab, tok)))
        return hit


def _byte_run(run: list[bytes]) -> str:
    try:
        return b"".join(run).decode("utf-8")
    except UnicodeDecodeError:
        return "\ufffd" * len(run)


def added_bos(llama_cpp, vocab) -> int | None:
    """The BOS id the vocabulary starts every text with, or None when it adds none.

    Only a vocabulary that adds BOS has one in the Hugging Face sense: llama.cpp reports id 11
    (GPT-2's default) as the BOS of a byte-level vocabulary without a BOS key, which Qwen's tokenizer
    never adds."""
    return _token_or_none(llama_cpp.llama_vocab_bos(vocab)) if llama_cpp.llama_vocab_get_add_bos(vocab) else None


def _token_or_none(token: int) -> int | None:
    return None if token is None or int(token) < 0 else int(token)


class JinjaChatTemplate:
    """A GGUF's own Jinja chat template (one zhllama does not know): rendered, then tokenized with its
    special tokens parsed, as llama.cpp's and Hugging Face's chat code do.  It has the attributes the
    engine, the server and the web UI read from a :class:`~zhllama.templates.ChatTemplate`."""

    name = "gguf"
    description = "the GGUF file's own chat template (tokenizer.chat_template)"
    default_system = None  # the Jinja template applies its own
    stop_strings: tuple[str, ...] = ()

    def __init__(self, source: str, bos: str, eos: str):
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        env.globals["raise_exception"] = _raise_template_error
        try:
            self._jinja = env.from_string(source)
        except Exception as e:  # jinja2.TemplateSyntaxError and friends
            raise ZhllamaError(f"the GGUF's chat template does not parse: {str(e).splitlines()[0]}",
                               "give --template alpaca|llama2-zh|llama2|chatml|none") from None
        self.source, self._bos, self._eos = source, bos, eos

    def render(self, messages: Sequence[dict], add_generation_prompt: bool = True) -> str:
        split_turns(messages)  # zhllama's checks of roles and order, with its messages
        try:
            return self._jinja.render(messages=list(messages), add_generation_prompt=add_generation_prompt,
                                      bos_token=self._bos, eos_token=self._eos)
        except ZhllamaError:
            raise
        except Exception as e:
            raise ZhllamaError(f"the GGUF's chat template failed on these messages: {str(e).splitlines()[0]}",
                               "check the messages' roles and order, or give --template") from None


def _raise_template_error(message: str):
    raise ZhllamaError(f"the GGUF's chat template refused the messages: {message}", "check the messages")


def gguf_template(source: str | None, tokenizer: GgufTokenizer,
                  template: str | None) -> ChatTemplate | JinjaChatTemplate:
    """``--template`` if given; else the file's template, as zhllama's own when it is one of them."""
    if template:
        return get_template(template)
    if not source:
        return get_template("none")
    for known in TEMPLATES.values():
        if known.name != "native" and known.jinja() == source:  # native has no Jinja of its own: it is the file's
            return known
    return JinjaChatTemplate(source, tokenizer.token_text(tokenizer.bos_token_id),
                             tokenizer.token_text(tokenizer.eos_token_id))

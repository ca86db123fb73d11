"""Train a Chinese SentencePiece model with LLaMA-compatible settings.

The settings mirror LLaMA's own ``tokenizer.model`` so that the pieces can be merged into it and
tokenize the same way: byte fallback (no unknown tokens), digits split one by one, identity
normalisation (no NFKC: LLaMA does none, so fullwidth punctuation stays fullwidth), whitespace
kept as is, a dummy ``▁`` prefix, and ``<unk>``/``<s>``/``</s>`` at ids 0/1/2.
"""

from __future__ import annotations

import re
import sys
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Literal

from ..config import check_ranges, flag_name, option
from ..errors import ZhllamaError, require_file

ModelType = Literal["bpe", "unigram"]
MODEL_TYPES = typing.get_args(ModelType)
Kind = Literal["sentencepiece", "byte-bpe"]


@dataclass(kw_only=True)
class TokenizerTrainConfig:
    """``zhllama tokenizer train``: its options, and the argument of :func:`train_tokenizer`."""

    corpus: list[str] = option(".txt (one document per line), .jsonl (a text field) or Alpaca .json; .gz accepted",
                               metavar="FILE")
    vocab_size: int = option("number of pieces (byte fallback alone takes 259)", 20000, low=260)
    model_type: ModelType = option("bpe pieces can all be reached once merged into LLaMA's BPE tokenizer", "bpe")
    type: Kind = option("sentencepiece (for LLaMA/Llama-2 bases) or byte-bpe (for byte-level bases: Llama-3, Qwen2)",
                        "sentencepiece")
    base: str | None = option("byte-bpe: the byte-level base tokenizer whose pre-tokenizer to train on "
                              "(default: Llama-3's split regex)", None, metavar="DIR")
    out: str = option("output folder")
    character_coverage: float = option("share of characters covered by pieces; the rarest fall back to bytes", 0.9995, low=0.9, high=1)
    max_sentence_length: int = option("lines longer than this many bytes are skipped", 16384, low=1)
    input_sentence_size: int = option("sample this many lines from a very large corpus (0: use all)", 0, low=0)
    shuffle: bool = option("sample the lines at random (--no-shuffle: take the first lines)", True)
    threads: int = option("trainer threads", 2, low=1)
    text_field: str = option("JSON field holding the text in .jsonl/.json files", "text")
    overwrite: bool = option("replace --out if it exists", False)
    verbose: bool = option("show SentencePiece's own training log", False)


def trainer_options(cfg: TokenizerTrainConfig, prefix: Path) -> dict:
    """Keyword arguments for ``SentencePieceTrainer.train`` (LLaMA's settings plus the user's)."""
    return dict(
        model_prefix=str(prefix), vocab_size=cfg.vocab_size, model_type=cfg.model_type,
        character_coverage=cfg.character_coverage, byte_fallback=True, split_digits=True,
        normalization_rule_name="identity", remove_extra_whitespaces=False, add_dummy_prefix=True,
        allow_whitespace_only_pieces=True, unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
        max_sentence_length=cfg.max_sentence_length, input_sentence_size=cfg.input_sentence_size,
        shuffle_input_sentence=cfg.shuffle, num_threads=cfg.threads,
        train_extremely_large_corpus=cfg.input_sentence_size > 10_000_000,
        minloglevel=0 if cfg.verbose else 2,
    )


class CorpusLines:
    """The corpus as SentencePiece sentences: every non-blank line of every document.

    SentencePiece wraps any exception raised inside its sentence iterator into an opaque
    RuntimeError, so a reading error is kept here and re-raised by the caller.
    """

    def __init__(self, files: list[Path], text_field: str, max_bytes: int, progress: bool = True):
        self.files, self.text_field, self.max_bytes, self.progress = files, text_field, max_bytes, progress
        self.lines = self.too_long = 0
        self.error: ZhllamaError | None = None

    def __iter__(self) -> Iterator[str]:
        from tqdm import tqdm

        from ..text import iter_documents

        # disable=None: a bar on a terminal, none in logs and pipes
        bar = tqdm(desc="reading corpus", unit=" lines", disable=None if self.progress else True, file=sys.stderr)
        try:
            for f in self.files:
                for doc in iter_documents(f, self.text_field):
                    for line in doc.splitlines():
                        if line.strip():
                            self.lines += 1
                            self.too_long += len(line.encode("utf-8")) > self.max_bytes
                            bar.update(1)
                            yield line
        except ZhllamaError as e:
            self.error = e
        finally:
            bar.close()


_TOO_HIGH = re.compile(r"Vocabulary size too high \((\d+)\)\. Please set it to a value <= (\d+)")
_TOO_SMALL = re.compile(r"Vocabulary size is smaller than required_chars\. (\d+) vs (\d+)")


def translate_sp_error(err: RuntimeError, cfg: TokenizerTrainConfig, lines: int) -> ZhllamaError:
    """One-line errors for the SentencePiece trainer failures a user can fix."""
    msg = str(err)
    if lines == 0 or "sentences_.empty()" in msg:
        return ZhllamaError(f"the corpus has no text: {', '.join(cfg.corpus)}",
                            "give files with text (.txt lines, .jsonl with a text field, or Alpaca .json)")
    if m := _TOO_HIGH.search(msg):
        return ZhllamaError(f"--vocab-size {m.group(1)} is larger than this corpus allows (at most {m.group(2)})",
                            f"use --vocab-size {m.group(2)} or less, or give more text")
    if m := _TOO_SMALL.search(msg):
        return ZhllamaError(f"--vocab-size {m.group(1)} is smaller than the {m.group(2)} characters and special pieces to cover",
                            "raise --vocab-size or lower --character-coverage")
    first = msg.strip().splitlines()[0] if msg.strip() else type(err).__name__
    return ZhllamaError(f"SentencePiece training failed: {first}", "check the options; --verbose shows the trainer's log")


def validate(cfg: TokenizerTrainConfig) -> list[Path]:
    if cfg.model_type not in MODEL_TYPES:
        raise ZhllamaError(f"unknown --model-type {cfg.model_type}", f"choose one of {', '.join(MODEL_TYPES)}")
    check_ranges(cfg, flag_name)  # also for the Python API: vocab_size >= 260, 0.9 <= character_coverage <= 1
    if not cfg.corpus:
        raise ZhllamaError("no corpus files given", "pass --corpus FILE [FILE ...]")
    return [require_file(f, "corpus file") for f in cfg.corpus]


def train_tokenizer(cfg: TokenizerTrainConfig, progress: bool = True) -> Path:
    """Train into ``cfg.out``: ``tokenizer.model``, ``tokenizer.vocab`` and the Hugging Face files."""
    import sentencepiece as spm

    from ..io import atomic_dir
    from .hf import write_hf_tokenizer

    files = validate(cfg)
    if cfg.type == "byte-bpe":
        return _train_byte_bpe(cfg, files, progress)
    with atomic_dir(cfg.out, cfg.overwrite) as tmp:
        corpus = CorpusLines(files, cfg.text_field, cfg.max_sentence_length, progress)
        try:
            spm.SentencePieceTrainer.train(sentence_iterator=iter(corpus), **trainer_options(cfg, tmp / "tokenizer"))
        except RuntimeError as e:
            raise (corpus.error or translate_sp_error(e, cfg, corpus.lines)) from None
        if corpus.error:
            raise corpus.error
        write_hf_tokenizer(tmp / "tokenizer.model", tmp)
        _log(progress, f"trained a {cfg.vocab_size}-piece {cfg.model_type} model on {corpus.lines:,} lines"
             + (f" ({corpus.too_long:,} longer than --max-sentence-length were skipped)" if corpus.too_long else ""))
    return Path(cfg.out)


def _train_byte_bpe(cfg: TokenizerTrainConfig, files: list[Path], progress: bool) -> Path:
    """A byte-level BPE on the corpus lines (``--model-type``/``--character-coverage`` are SentencePiece's)."""
    from ..io import atomic_dir
    from .bbpe_train import base_tokenizer_data, train_byte_bpe, write_byte_bpe

    base = base_tokenizer_data(cfg.base) if cfg.base else None
    with atomic_dir(cfg.out, cfg.overwrite) as tmp:
        corpus = CorpusLines(files, cfg.text_field, cfg.max_sentence_length, progress)
        tok = train_byte_bpe(iter(corpus), cfg.vocab_size, base)
        if corpus.error:
            raise corpus.error
        if corpus.lines == 0:
            raise ZhllamaError(f"the corpus has no text: {', '.join(cfg.corpus)}",
                               "give files with text (.txt lines, .jsonl with a text field, or Alpaca .json)")
        write_byte_bpe(tok, tmp)
        _log(progress, f"trained a {tok.get_vocab_size():,}-token byte-level BPE on {corpus.lines:,} lines")
    return Path(cfg.out)


def _log(enabled: bool, text: str) -> None:
    if enabled:
        print(f"zhllama: {text}", file=sys.stderr)


"""Train a byte-level BPE with the ``tokenizers`` library: ``zhllama tokenizer train --type byte-bpe``.

The tokenizer is trained on the pre-tokenizer of the base it will be merged into (``--base``: its
normalizer, split regex and ByteLevel step, so every token it learns is one pre-token's bytes there)
and on GPT-2's 256-byte alphabet, so its tokens are expressible in the base.  Without ``--base``,
Llama-3's split regex is used.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Iterable

from . import bbpe


def empty_like(base: dict | None, ignore_merges: bool = True) -> "Tokenizer":  # noqa: F821
    """An untrained byte-level BPE with ``base``'s normalizer, pre-tokenizer and decoder (or Llama-3's)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

    if base is not None:
        data = copy.deepcopy(base)
        data["model"] = {"type": "BPE", "vocab": {}, "merges": [], "dropout": None, "unk_token": None,
                         "continuing_subword_prefix": None, "end_of_word_suffix": None, "fuse_unk": False,
                         "byte_fallback": False, "ignore_merges": bool(base["model"].get("ignore_merges"))}
        data["added_tokens"], data["post_processor"] = [], None
        return Tokenizer.from_str(json.dumps(data, ensure_ascii=False))
    tok = Tokenizer(models.BPE(ignore_merges=ignore_merges))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(bbpe.LLAMA3_REGEX), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    return tok


def train_byte_bpe(lines: Iterable[str], vocab_size: int, base: dict | None = None, min_frequency: int = 2):
    """A trained ``tokenizers.Tokenizer``: 256 byte tokens, then ``vocab_size - 256`` learnt ones."""
    from tokenizers import pre_tokenizers, trainers

    tok = empty_like(base)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=[])
    tok.train_from_iterator(lines, trainer)
    return tok


def write_byte_bpe(tok, out: Path) -> None:
    """``tokenizer.json`` and a ``tokenizer_config.json`` that makes transformers read it as it is."""
    from ..io import write_json_atomic

    tok.save(str(out / "tokenizer.json"))
    write_json_atomic(out / "tokenizer_config.json", {"tokenizer_class": "PreTrainedTokenizerFast",
                                                      "clean_up_tokenization_spaces": False,
                                                      "model_max_length": 1_000_000_000})


def base_tokenizer_data(base: str | Path) -> dict:
    data = bbpe.read_tokenizer_json(base)
    bbpe.check_byte_level(data, base, "--base")
    return data

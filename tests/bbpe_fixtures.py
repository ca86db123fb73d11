"""A small Llama-3-style byte-level BPE base for tests, built in-process (importable from any test folder).

Trained with the ``tokenizers`` library on English docstrings only (so Chinese falls to bytes in it):
Llama-3's split regex and ByteLevel step, ``ignore_merges``, a few hundred merges, two special tokens
after the learnt ones and a post-processor that adds ``<|begin_of_text|>`` as Llama-3's does.
"""

from __future__ import annotations

import json
from pathlib import Path

BOS, EOS = "<|begin_of_text|>", "<|end_of_text|>"


def build_byte_level_base(lines, out: Path, merges: int = 600) -> Path:
    from tokenizers import processors

    from zhllama.tokenizer.bbpe_train import train_byte_bpe

    tok = train_byte_bpe(lines, 256 + merges)
    tok.add_special_tokens([BOS, EOS])
    bos_id = tok.token_to_id(BOS)
    tok.post_processor = processors.TemplateProcessing(single=f"{BOS}:0 $A:0", pair=f"{BOS}:0 $A:0 {BOS}:1 $B:1",
                                                       special_tokens=[(BOS, bos_id)])
    out.mkdir(parents=True, exist_ok=True)
    tok.save(str(out / "tokenizer.json"))
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": BOS, "eos_token": EOS,
              "clean_up_tokenization_spaces": False, "model_max_length": 1_000_000}
    (out / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    return out

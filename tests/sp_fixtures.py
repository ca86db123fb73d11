"""Training a LLaMA-style SentencePiece model for tests (importable from any test folder)."""

from __future__ import annotations

from pathlib import Path


def train_llama_style_sp(text_lines, prefix: Path, vocab_size: int, model_type: str = "bpe") -> Path:
    import sentencepiece as spm

    corpus = prefix.with_suffix(".txt")
    corpus.write_text("\n".join(text_lines), encoding="utf-8")
    spm.SentencePieceTrainer.train(
        input=str(corpus), model_prefix=str(prefix), vocab_size=vocab_size, model_type=model_type,
        character_coverage=0.99, byte_fallback=True, split_digits=True, normalization_rule_name="identity",
        remove_extra_whitespaces=False, add_dummy_prefix=True, allow_whitespace_only_pieces=True,
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1, num_threads=2, minloglevel=2, max_sentence_length=8192,
    )
    return prefix.with_suffix(".model")

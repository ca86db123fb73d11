"""Tokenizer stage: train a Chinese SentencePiece model, merge it into LLaMA's, exact HF files, stats."""

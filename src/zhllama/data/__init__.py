"""Data stage: pre-training corpora, instruction data, and the embedded default (builtin) data."""

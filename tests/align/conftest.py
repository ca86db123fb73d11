"""Preference files for the alignment tests: a learnable synthetic preference (Chinese replies are
preferred to English ones) with disjoint training and held-out pairs."""

from __future__ import annotations

from pathlib import Path

import pytest
from align_helpers import synthetic_pairs, write_jsonl


@pytest.fixture(scope="session")
def preference_files(tmp_path_factory, builtin_text) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("preference")
    return {"train": write_jsonl(root / "train.jsonl", synthetic_pairs(builtin_text, 0, 96)),
            "heldout": write_jsonl(root / "heldout.jsonl", synthetic_pairs(builtin_text, 500, 40))}

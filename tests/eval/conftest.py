"""CSV fixtures in the public CMMLU and C-Eval layouts, written by the tests themselves."""

from __future__ import annotations

from pathlib import Path

import pytest
from eval_fixtures import QUESTIONS, write_ceval, write_cmmlu


@pytest.fixture
def cmmlu_dir(tmp_path) -> Path:
    return write_cmmlu(tmp_path / "cmmlu", {
        "agronomy": (QUESTIONS[:3], QUESTIONS[3:8]),
        "chinese_history": (QUESTIONS[5:8], QUESTIONS[:5]),
    })


@pytest.fixture
def ceval_dir(tmp_path) -> Path:
    return write_ceval(tmp_path / "ceval", {
        "computer_network": (QUESTIONS[:2], QUESTIONS[2:6], QUESTIONS[4:7]),
        "logic": (QUESTIONS[6:8], QUESTIONS[:3], QUESTIONS[:2]),
    })


@pytest.fixture(scope="session")
def tiny_model(tiny_model_dir):
    from zhllama.model.load import load_model

    return load_model(tiny_model_dir, device="cpu")


@pytest.fixture(scope="session")
def varied_model_dir(tmp_path_factory, tiny_model_dir) -> Path:
    """The tiny model with its weights (not norms) scaled by 6.

    At the default init scale the random model answers "B" to every question, which would make an
    agreement test pass trivially; scaled up, its answers depend on the question.
    """
    import torch
    from transformers import AutoModelForCausalLM

    from zhllama.tokenizer.hf import copy_tokenizer_files

    out = tmp_path_factory.mktemp("varied") / "model"
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" not in name:
                p.mul_(6)
    model.save_pretrained(out)
    copy_tokenizer_files(tiny_model_dir, out)
    return out


@pytest.fixture(scope="session")
def varied_model(varied_model_dir):
    from zhllama.model.load import load_model

    return load_model(varied_model_dir, device="cpu")

"""Fixtures for the inference tests: a tiny model that has memorised Chinese text.

A random model emits random byte-fallback tokens, which do not form valid UTF-8; to test that
streaming never splits a character we need a model that emits *valid* multi-byte characters made
of byte-fallback tokens.  The tiny model is trained for a few seconds until it reproduces one
chat reply and one raw text whose characters are mostly not in the tiny vocabulary.
"""

from __future__ import annotations

import pytest

from infer_memorized import QUESTION, RAW_CONTINUATION, RAW_PROMPT, REPLY


def _train(model, sequences, steps=400):
    import torch

    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # see one_torch_thread
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(steps):
        loss = sum(model(input_ids=torch.tensor([s]), labels=torch.tensor([s])).loss for s in sequences)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if loss.item() < 0.03 * len(sequences):
            break
    model.eval()
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """The CI box's cores are shared: torch's default thread pool then spins and runs ~10x slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def memorized_model_dir(tmp_path_factory, tiny_model_dir):
    import torch

    from zhllama.meta import write_meta
    from zhllama.model.load import load_model
    from zhllama.templates import encode_messages
    from zhllama.tokenizer.hf import copy_tokenizer_files

    model, tok = load_model(tiny_model_dir)
    chat, _ = encode_messages(tok, "alpaca", [{"role": "user", "content": QUESTION},
                                              {"role": "assistant", "content": REPLY}])
    raw = [tok.bos_token_id] + tok(RAW_PROMPT + RAW_CONTINUATION, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    _train(model, [chat, raw])
    out = tmp_path_factory.mktemp("memorized") / "model"
    model.save_pretrained(out)
    copy_tokenizer_files(tiny_model_dir, out)
    write_meta(out, template="alpaca")
    return out


@pytest.fixture(scope="session")
def tiny_engine(tiny_model_dir):
    from zhllama.infer.engine import Engine

    return Engine.load(tiny_model_dir)


@pytest.fixture(scope="session")
def memorized_engine(memorized_model_dir):
    from zhllama.infer.engine import Engine

    return Engine.load(memorized_model_dir)

"""``--engine vllm`` on every model family: a tiny llama (Llama-3 vocabulary, GQA, llama3 RoPE), qwen2 and qwen3
answer greedily exactly as zhllama's own engine does (skipped when vLLM is not installed: ``make test-vllm``).

Each model is written by ``zhllama model init --family`` with head size 64 (vLLM's CPU attention takes
32..256), its biases and norms set to random values (a fresh model has zeros and ones there, which a
backend that ignored Qwen2's q/k/v biases or Qwen3's q/k norms would reproduce), and is prompted with its
family's default template, as ``zhllama chat --engine vllm`` prompts it.
"""

from __future__ import annotations

import os

import pytest
from engine_cases import CHATS, TEXTS, vllm_engine_pair
from family_fixtures import SHAPES, TEMPLATES, engine_test_model

vllm = pytest.importorskip("vllm")

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB; vLLM's CPU default reserves much more


@pytest.fixture(scope="module", params=sorted(SHAPES))
def family(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def model_dir(family, byte_level_tokenizer_dirs, tmp_path_factory):
    out = tmp_path_factory.mktemp(f"vllm-{family}") / "model"
    return engine_test_model(family, byte_level_tokenizer_dirs, out)


@pytest.fixture(scope="module")
def engines(model_dir):
    """(zhllama's engine, the vLLM engine) on the same folder."""
    yield from vllm_engine_pair(model_dir)


def _greedy(max_new_tokens):
    from zhllama.infer.sampling import SamplingParams

    return SamplingParams(max_new_tokens=max_new_tokens, temperature=0.0, repetition_penalty=1.0)


def _replies(completions):
    return [(c.token_ids, c.text, c.finish_reason, c.prompt_tokens, c.completion_tokens) for c in completions]


def test_vllm_loads_the_family_and_templates_as_zhllama(family, engines):
    ours, theirs = engines
    assert theirs.llm.model_config.hf_config.model_type == family
    assert ours.template.name == theirs.template.name == TEMPLATES[family]
    tokenizer = theirs.llm.get_tokenizer()
    for messages in CHATS:
        rendered = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        ids = list(rendered["input_ids"] if hasattr(rendered, "keys") else rendered)  # transformers 5: a dict
        assert ids == ours.chat_prompt(messages) == theirs.chat_prompt(messages)


def test_greedy_chat_and_completion_equal_zhllamas_engine(engines):
    ours, theirs = engines
    prompts = [ours.chat_prompt(m) for m in CHATS] + [ours.text_prompt(t) for t in TEXTS]
    mine = ours.generate(prompts, _greedy(24))
    assert _replies(theirs.generate(prompts, _greedy(24))) == _replies(mine)
    assert any(c.completion_tokens > 1 for c in mine)

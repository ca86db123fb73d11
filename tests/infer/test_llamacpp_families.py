"""``--engine llamacpp`` on every model family: a tiny llama (Llama-3 vocabulary, GQA, llama3 RoPE), qwen2 and
qwen3, run by llama.cpp from their f32 export, prompt and answer greedily as zhllama's own engine does.

Skipped without llama-cpp-python (``make test-engines-native`` runs it, where the skip fails).  Each model
is written by ``zhllama model init --family`` with its biases and norms set to random values (a fresh
model has zeros and ones there) and its attention and output sharpened, as in test_llamacpp_engine.py: a
freshly initialised model attends almost uniformly, so a wrong RoPE, Q/K layout, bias or norm would
hardly change its tokens.  Replies are kept to 16 tokens (float32 near-ties, see that file).
"""

from __future__ import annotations

import pytest
from engine_cases import CHATS, TEXTS
from family_fixtures import SHAPES, TEMPLATES, engine_test_model

llama_cpp = pytest.importorskip("llama_cpp")



pytestmark = pytest.mark.usefixtures("llama_cpp_plain_buffers")  # tests/conftest.py says why


@pytest.fixture(scope="module", params=sorted(SHAPES))
def family(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def model_dir(family, byte_level_tokenizer_dirs, tmp_path_factory):
    out = tmp_path_factory.mktemp(f"llamacpp-{family}") / "model"
    return engine_test_model(family, byte_level_tokenizer_dirs, out, sharpen=True)


@pytest.fixture(scope="module")
def engines(model_dir):
    """(zhllama's engine in float32, llama.cpp on the folder's f32 export) on the same model."""
    from zhllama.infer.backend import BackendConfig
    from zhllama.infer.config import EngineConfig

    theirs = BackendConfig(kind="llamacpp", outtype="f32").load(EngineConfig(model=str(model_dir)), threads=2, parallel=2)
    yield EngineConfig(model=str(model_dir), dtype="float32").load(), theirs
    theirs.close()


def _greedy(max_new_tokens=16):
    from zhllama.infer.sampling import SamplingParams

    return SamplingParams(max_new_tokens=max_new_tokens, temperature=0.0, repetition_penalty=1.0)


def _replies(completions):
    return [(c.token_ids, c.text, c.finish_reason, c.prompt_tokens, c.completion_tokens) for c in completions]


def test_llamacpp_templates_and_tokenizes_as_zhllama(family, engines):
    ours, theirs = engines
    assert ours.template.name == theirs.template.name == TEMPLATES[family]
    for messages in CHATS:
        assert theirs.chat_prompt(messages) == ours.chat_prompt(messages)
    for text in TEXTS:
        assert theirs.text_prompt(text) == ours.text_prompt(text)


def test_greedy_chat_and_completion_equal_zhllamas_engine(engines):
    ours, theirs = engines
    prompts = [ours.chat_prompt(m) for m in CHATS] + [ours.text_prompt(t) for t in TEXTS]
    mine = ours.generate(prompts, _greedy())
    assert _replies(theirs.generate(prompts, _greedy())) == _replies(mine)
    assert any(c.completion_tokens > 1 for c in mine)


def test_eval_ppl_of_the_gguf_equals_the_model_folders(model_dir, tmp_path, capsys):
    """`eval ppl` scores the family's f32 GGUF as the Hugging Face folder: the same tokens (BOS only where the
    tokenizer adds one), the same perplexity."""
    import json

    from zhllama.cli import main
    from zhllama.export import export_gguf

    text = tmp_path / "t.txt"
    text.write_text(TEXTS[0] + "北京是中国的首都。" + TEXTS[1], encoding="utf-8")
    path = export_gguf(model_dir, tmp_path / "m.gguf", outtype="f32", progress=False)
    results = []
    for model in (model_dir, path):
        assert main(["eval", "ppl", "--model", str(model), "--text", str(text), "--context", "16", "--stride", "8",
                     "--device", "cpu"]) == 0
        results.append(json.loads(capsys.readouterr().out))
    hf, gguf = results
    assert gguf["tokens"] == hf["tokens"] > 16
    assert gguf["ppl"] == pytest.approx(hf["ppl"], rel=1e-3)

"""`zhllama export gguf` embeds the model folder's chat template (zhllama's Jinja) in the GGUF."""

from __future__ import annotations

import pytest
from export_models import copy_model
from gguf import GGUFReader

from zhllama.cli import main
from zhllama.meta import write_meta
from zhllama.templates import encode_messages, get_template
from zhllama.tokenizer.chat import set_chat_template
from zhllama.tokenizer.load import load_tokenizer

MESSAGES = [
    {"role": "system", "content": "你是一个助手。"},
    {"role": "user", "content": "你好，介绍一下北京。"},
    {"role": "assistant", "content": "北京是中国的首都。"},
    {"role": "user", "content": "What about Shanghai? 123"},
]


@pytest.fixture(scope="module")
def sft_gguf(tiny_model_dir, tmp_path_factory):
    """A model folder as an SFT run leaves it (template recorded in zhllama.json), exported by the CLI."""
    d = copy_model(tiny_model_dir, tmp_path_factory.mktemp("sft") / "model")
    write_meta(d, template="llama2-zh")
    set_chat_template(d, "llama2-zh")
    out = d.parent / "model-f16.gguf"
    assert main(["export", "gguf", "--model", str(d), "--out", str(out), "--outtype", "f16"]) == 0
    return d, out


def test_gguf_carries_the_folders_template(sft_gguf):
    folder, gguf_path = sft_gguf
    meta = {k: f.contents() for k, f in GGUFReader(str(gguf_path)).fields.items()}
    assert meta["tokenizer.chat_template"] == load_tokenizer(folder).chat_template
    assert meta["tokenizer.chat_template"] == get_template("llama2-zh").jinja()


def test_llama_cpp_renders_zhllamas_prompt(sft_gguf):
    """llama-cpp-python formats the chat with the GGUF's template and tokenizes it as zhllama does."""
    llama_cpp = pytest.importorskip("llama_cpp")
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    folder, gguf_path = sft_gguf
    llm = llama_cpp.Llama(model_path=str(gguf_path), vocab_only=True, verbose=False)
    formatter = Jinja2ChatFormatter(llm.metadata["tokenizer.chat_template"], eos_token="</s>", bos_token="<s>",
                                    add_generation_prompt=True)
    prompt = formatter(messages=MESSAGES).prompt
    assert prompt == get_template("llama2-zh").render_text(MESSAGES, add_generation_prompt=True)
    tok = load_tokenizer(folder)
    assert llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True) == \
        encode_messages(tok, "llama2-zh", MESSAGES)[0]

"""The family templates (llama3, qwen) and ``--template native`` on byte-level BPE vocabularies.

* ``llama3`` and ``qwen``: zhllama's ids equal ``apply_chat_template``'s with the Jinja zhllama writes
  (the 240 generated conversations of test_chat_template_jinja.py) and with the families' official
  templates (Meta-Llama-3-8B-Instruct's, Qwen2-Instruct's);
* ``native``: ids are ``apply_chat_template``'s own; the mask covers each reply and its end token;
* bad input: ``llama3`` on a vocabulary without its header tokens, ``native`` without a chat_template.
"""

from __future__ import annotations

import shutil

import pytest
from bpe_fixtures import LLAMA3_INSTRUCT_TEMPLATE, QWEN2_TEMPLATE
from test_chat_template_jinja import CONVERSATIONS, REPLIES, hf_ids

from zhllama.errors import ZhllamaError
from zhllama.templates import encode_messages, get_template, stop_token_ids
from zhllama.tokenizer.chat import set_chat_template
from zhllama.tokenizer.load import load_tokenizer

SHAPE = {"llama3": "llama3", "qwen": "qwen2"}
OFFICIAL = {"llama3": LLAMA3_INSTRUCT_TEMPLATE, "qwen": QWEN2_TEMPLATE}


def cases(with_system: bool = False):
    """(messages, add_generation_prompt) pairs: each conversation as a prompt and, with a reply, as training data."""
    for msgs, reply in zip(CONVERSATIONS, REPLIES):
        if with_system and msgs[0]["role"] != "system":
            msgs = [{"role": "system", "content": "你是一个乐于助人的助手。"}] + msgs
        yield msgs, True
        yield msgs + [{"role": "assistant", "content": reply}], False


def mismatches(tok, template) -> list:
    return [(m, g) for m, g in cases() if encode_messages(tok, template, m, g)[0] != hf_ids(tok, m, g)]


def tokenizer_with(src, dst, template: str):
    shutil.copytree(src, dst)
    set_chat_template(dst, template)
    return load_tokenizer(dst)


@pytest.mark.parametrize("name", ["llama3", "qwen"])
def test_family_template_jinja_gives_zhllamas_ids(name, byte_level_tokenizer_dirs, tmp_path):
    tok = tokenizer_with(byte_level_tokenizer_dirs[SHAPE[name]], tmp_path / "tok", name)
    assert tok.chat_template == get_template(name).jinja("")
    bad = mismatches(tok, name)
    assert not bad, f"{len(bad)} of {2 * len(CONVERSATIONS)} differ, first: {bad[0]!r}"


def test_llama3_is_metas_instruct_format(byte_level_tokenizer_dirs):
    """Meta's own chat_template gives the very ids of zhllama's llama3 (Meta's renders an empty system message too)."""
    tok = load_tokenizer(byte_level_tokenizer_dirs["llama3"])
    tok.chat_template = LLAMA3_INSTRUCT_TEMPLATE
    bad = mismatches(tok, "llama3")
    assert not bad, f"{len(bad)} differ, first: {bad[0]!r}"
    text = get_template("llama3").render_text([{"role": "user", "content": " 你好 "}], bos="<|begin_of_text|>", separator="")
    assert text == ("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n你好<|eot_id|>"
                    "<|start_header_id|>assistant<|end_header_id|>\n\n")


def test_qwen_is_qwen2_instructs_chatml(byte_level_tokenizer_dirs):
    """Qwen2-Instruct's template (which has no BOS) gives zhllama's qwen ids, its default system message included."""
    tok = load_tokenizer(byte_level_tokenizer_dirs["qwen2"])
    tok.chat_template = QWEN2_TEMPLATE
    bad = mismatches(tok, "qwen")
    assert not bad, f"{len(bad)} differ, first: {bad[0]!r}"
    ids, mask = encode_messages(tok, "qwen", [{"role": "user", "content": "你好"}, {"role": "assistant", "content": "好"}])
    reply = tok.decode([i for i, m in zip(ids, mask) if m])
    assert reply == "好<|im_end|>"  # the reply and its end token are trained, the "\n" after it is not
    assert stop_token_ids(tok, "qwen") == {tok.convert_tokens_to_ids("<|im_end|>")}


@pytest.mark.parametrize("shape, official", [("llama3", LLAMA3_INSTRUCT_TEMPLATE), ("qwen2", QWEN2_TEMPLATE)])
def test_native_ids_are_apply_chat_templates(shape, official, byte_level_tokenizer_dirs):
    tok = load_tokenizer(byte_level_tokenizer_dirs[shape])
    tok.chat_template = official
    bad = mismatches(tok, "native")
    assert not bad, f"{len(bad)} differ, first: {bad[0]!r}"


@pytest.mark.parametrize("name, shape", [("llama3", "llama3"), ("qwen", "qwen2")])
def test_native_mask_is_each_reply_with_its_end(name, shape, byte_level_tokenizer_dirs):
    """Rendering prefixes marks each reply's tokens; they are the family template's reply tokens (Qwen's
    also the newline its template writes after <|im_end|>)."""
    tok = load_tokenizer(byte_level_tokenizer_dirs[shape])
    tok.chat_template = OFFICIAL[name]
    for msgs, gen in list(cases(with_system=True))[:120]:
        ids, mask = encode_messages(tok, "native", msgs, gen)
        ours, our_mask = encode_messages(tok, name, msgs, gen)
        assert ids == ours
        extra = [i for i, (m, o) in enumerate(zip(mask, our_mask)) if m and not o]
        assert all(o <= m for m, o in zip(mask, our_mask))  # every token zhllama trains, native trains too
        assert all(tok.decode([ids[i]]) == "\n" for i in extra)
    assert stop_token_ids(tok, "native") == stop_token_ids(tok, name)


def test_native_uses_generation_blocks(byte_level_tokenizer_dirs):
    """A template with {% generation %} marks what it marks (transformers' assistant mask)."""
    tok = load_tokenizer(byte_level_tokenizer_dirs["qwen2"])
    tok.chat_template = ("{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' }}{% if m['role'] == 'assistant' %}"
                         "{% generation %}{{ m['content'] + '<|im_end|>' }}{% endgeneration %}{% else %}"
                         "{{ m['content'] + '<|im_end|>' }}{% endif %}{{ '\n' }}{% endfor %}")
    ids, mask = encode_messages(tok, "native", [{"role": "user", "content": "你好"}, {"role": "assistant", "content": "好的"}])
    assert tok.decode([i for i, m in zip(ids, mask) if m]) == "好的<|im_end|>"


def test_llama3_on_a_vocabulary_without_its_tokens_is_refused(tiny_tokenizer, byte_level_tokenizer_dirs):
    msgs = [{"role": "user", "content": "你好"}]
    with pytest.raises(ZhllamaError, match=r"no <\|start_header_id\|> token"):
        encode_messages(tiny_tokenizer, "llama3", msgs)
    with pytest.raises(ZhllamaError, match=r"no <\|im_start\|> token"):
        encode_messages(load_tokenizer(byte_level_tokenizer_dirs["llama3"]), "qwen", msgs)


def test_native_without_chat_template_is_refused(byte_level_tokenizer_dirs):
    tok = load_tokenizer(byte_level_tokenizer_dirs["llama3"])  # a base Llama-3 tokenizer ships none
    assert not tok.chat_template
    with pytest.raises(ZhllamaError, match="native: the tokenizer has no chat_template"):
        encode_messages(tok, "native", [{"role": "user", "content": "你好"}])


@pytest.mark.parametrize("name, folder", [("llama3", "llama3"), ("qwen", "qwen2")])
def test_real_tokenizers(name, folder, shared_data, tmp_path):
    """The real 128K Llama-3 and 151K Qwen2 vocabularies: Jinja and encode_messages agree."""
    tok = tokenizer_with(shared_data / "tokenizers" / folder, tmp_path / "tok", name)
    bad = mismatches(tok, name)
    assert not bad, f"{len(bad)} differ, first: {bad[0]!r}"

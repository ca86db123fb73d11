"""The Jinja chat_template in saved tokenizer folders gives the ids zhllama itself feeds the model.

For every template, ``tokenizer.apply_chat_template`` on a folder carrying that template (written by
``zhllama.tokenizer.chat.set_chat_template``) must equal ``zhllama.templates.encode_messages`` on 240
generated conversations: with and without a system prompt, 1-4 turns, Chinese, English and mixed
text, leading/trailing spaces, newlines, digits, ASCII and full-width punctuation.
"""

from __future__ import annotations

import random
import shutil

import pytest

from zhllama.templates import TEMPLATES, encode_messages, get_template
from zhllama.tokenizer.chat import set_chat_template
from zhllama.tokenizer.hf import write_hf_tokenizer
from zhllama.tokenizer.load import load_tokenizer

# the templates that render on any vocabulary (llama3, qwen and native need their tokenizers: test_family_templates.py)
ANY_VOCABULARY = sorted(n for n, t in TEMPLATES.items() if not t.special_tokens and n != "native")

N_CONVERSATIONS = 240

WORDS = [
    "你好", "北京", "是中国的首都", "今天天气怎么样", "请介绍一下", "人工智能", "机器学习", "谢谢", "我们",
    "hello", "world", "Shanghai", "the", "model", "is", "quick", "brown", "fox", "Python", "GPU",
    "2024", "3.14", "42", "1,000", "100%", "v2", "x=1", "(a+b)", "e.g.", "C++", "don't", "it's",
    "，", "。", "！", "？", "：", "；", "“引号”", "《书名》", "（括号）", "、", "——", "…", "１２３", "ＡＢＣ",
    ",", ".", "!", "?", ":", ";", "'", '"', "-", "#", "*", "[", "]", "/", "\\", "{}", "<", ">",
    "😀", "日本語", "é", "\t",
]
SPACING = ["", "", "", " ", " ", "  ", "\n", "\n\n", " \n", "\n  "]


def random_text(rng: random.Random) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(1, 12))]
    text = ""
    for w in words:
        text += w + rng.choice(["", "", " ", " ", "\n"])  # Chinese runs on; English has spaces
    return rng.choice(SPACING) + text.strip(" ") + rng.choice(SPACING)


def random_conversation(rng: random.Random) -> list[dict]:
    """1-4 turns, a system prompt half of the time; ends with a user message (a generation prompt)."""
    msgs = []
    roll = rng.random()
    if roll < 0.4:
        msgs.append({"role": "system", "content": random_text(rng)})
    elif roll < 0.5:
        msgs.append({"role": "system", "content": ""})  # explicit empty system: no system block at all
    turns = rng.randint(1, 4)
    for i in range(turns):
        msgs.append({"role": "user", "content": random_text(rng)})
        if i < turns - 1:
            msgs.append({"role": "assistant", "content": "" if rng.random() < 0.05 else random_text(rng)})
    return msgs


CONVERSATIONS = [random_conversation(random.Random(i)) for i in range(N_CONVERSATIONS)]
REPLIES = [random_text(random.Random(10_000 + i)) for i in range(N_CONVERSATIONS)]


def hf_ids(tokenizer, messages, add_generation_prompt: bool) -> list[int]:
    out = tokenizer.apply_chat_template(messages, add_generation_prompt=add_generation_prompt, tokenize=True)
    return list(out["input_ids"])  # transformers 5 returns a BatchEncoding (return_dict=True by default)


def folder_with_template(src, dst, name):
    shutil.copytree(src, dst)
    set_chat_template(dst, name)
    return load_tokenizer(dst)


def assert_all_equal(tokenizer, name):
    template = get_template(name)
    mismatches = []
    for msgs, reply in zip(CONVERSATIONS, REPLIES):
        full = msgs + [{"role": "assistant", "content": reply}]
        for conv, gen in ((msgs, True), (full, False)):
            ours = encode_messages(tokenizer, template, conv, add_generation_prompt=gen)[0]
            if hf_ids(tokenizer, conv, gen) != ours:
                mismatches.append((conv, gen))
    assert not mismatches, f"{len(mismatches)} of {2 * N_CONVERSATIONS} differ, first: {mismatches[0]!r}"


def test_conversations_cover_the_cases():
    flat = [m for c in CONVERSATIONS for m in c]
    assert sum(c[0]["role"] == "system" and bool(c[0]["content"]) for c in CONVERSATIONS) > 60
    assert sum(c[0]["role"] != "system" for c in CONVERSATIONS) > 60
    assert {sum(m["role"] == "user" for m in c) for c in CONVERSATIONS} == {1, 2, 3, 4}
    contents = [m["content"] for m in flat] + REPLIES
    for probe in (lambda t: t.startswith(" "), lambda t: t.endswith(" "), lambda t: "\n" in t,
                  lambda t: any(c.isdigit() for c in t), lambda t: "，" in t or "。" in t,
                  lambda t: any("\u4e00" <= c <= "\u9fff" for c in t) and any(c.isascii() and c.isalpha() for c in t)):
        assert sum(map(probe, contents)) > 50


@pytest.mark.parametrize("name", ANY_VOCABULARY)
def test_apply_chat_template_gives_zhllamas_ids(name, tiny_tokenizer_dir, tmp_path):
    tok = folder_with_template(tiny_tokenizer_dir, tmp_path / "tok", name)
    assert tok.chat_template == get_template(name).jinja()
    assert_all_equal(tok, name)


@pytest.mark.parametrize("name", ANY_VOCABULARY)
def test_rendered_text_is_zhllamas_render_text(name, tiny_tokenizer_dir, tmp_path):
    tok = folder_with_template(tiny_tokenizer_dir, tmp_path / "tok", name)
    for msgs in CONVERSATIONS[:50]:
        text = tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
        assert text == get_template(name).render_text(msgs, add_generation_prompt=True)


@pytest.mark.parametrize("tokenizer_name", ["llama2", "chinese-llama2"])
def test_real_llama_tokenizers(tokenizer_name, shared_data, tmp_path):
    sp_model = shared_data / "tokenizers" / tokenizer_name / "tokenizer.model"
    base = write_hf_tokenizer(sp_model, tmp_path / "base")
    for name in ANY_VOCABULARY:
        assert_all_equal(folder_with_template(base, tmp_path / name, name), name)


def test_default_system_prompt_and_generation_prompt_are_rendered(tiny_tokenizer_dir, tmp_path):
    tok = folder_with_template(tiny_tokenizer_dir, tmp_path / "tok", "llama2-zh")
    msgs = [{"role": "user", "content": "你好"}]
    assert tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False) == (
        "<s>[INST] <<SYS>>\nYou are a helpful assistant. 你是一个乐于助人的助手。\n<</SYS>>\n\n你好 [/INST]")
    ids = hf_ids(tok, msgs, True)
    assert ids[0] == tok.bos_token_id and ids.count(tok.bos_token_id) == 1  # "<s>" is BOS, not text


@pytest.mark.parametrize("messages, fragment", [
    ([{"role": "assistant", "content": "x"}], "must alternate"),
    ([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}], "must alternate"),
    ([{"role": "system", "content": "s"}], "no user message"),
    ([{"role": "user", "content": ["a list"]}], "must be text"),
])
def test_bad_conversations_raise(messages, fragment, tiny_tokenizer_dir, tmp_path):
    from jinja2.exceptions import TemplateError

    tok = folder_with_template(tiny_tokenizer_dir, tmp_path / "tok", "chatml")
    with pytest.raises(TemplateError, match=fragment):
        tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


def test_generation_prompt_must_match_the_last_role(tiny_tokenizer_dir, tmp_path):
    from jinja2.exceptions import TemplateError

    tok = folder_with_template(tiny_tokenizer_dir, tmp_path / "tok", "alpaca")
    with pytest.raises(TemplateError, match="add_generation_prompt is false"):
        tok.apply_chat_template([{"role": "user", "content": "a"}], add_generation_prompt=False, tokenize=False)
    with pytest.raises(TemplateError, match="already ends with an assistant"):
        tok.apply_chat_template([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}],
                                add_generation_prompt=True, tokenize=False)


def test_control_token_text_in_a_message_is_the_remaining_difference(tiny_tokenizer_dir, tmp_path):
    """zhllama reads "</s>" typed by a user as text; a plain apply_chat_template reads it as EOS.

    ``sanitize_control_tokens=True`` (transformers 5) makes Hugging Face read it as text too, but
    encodes it apart from the text around it, so the ids there can still differ from zhllama's.
    """
    tok = folder_with_template(tiny_tokenizer_dir, tmp_path / "tok", "llama2-zh")
    msgs = [{"role": "user", "content": "what does </s> mean?"}]
    ours = encode_messages(tok, "llama2-zh", msgs)[0]
    assert ours.count(tok.eos_token_id) == 0
    assert hf_ids(tok, msgs, True).count(tok.eos_token_id) == 1
    sanitized = tok.apply_chat_template(msgs, add_generation_prompt=True, sanitize_control_tokens=True)
    assert tok.eos_token_id not in sanitized["input_ids"]


def test_folder_template_follows_the_default_rule(tiny_tokenizer_dir, tmp_path):
    """A folder gets what `zhllama chat` would use: zhllama.json's template, else none (a tokenizer folder has no family)."""
    from zhllama.meta import write_meta
    from zhllama.model.families import resolve_template

    d = tmp_path / "model"
    shutil.copytree(tiny_tokenizer_dir, d)
    set_chat_template(d, resolve_template(d))
    assert load_tokenizer(d).chat_template == get_template("none").jinja()
    write_meta(d, template="chatml")
    (d / "chat_template.jinja").write_text("stale", encoding="utf-8")  # as save_pretrained writes it
    set_chat_template(d, resolve_template(d))
    assert load_tokenizer(d).chat_template == get_template("chatml").jinja()


def test_written_tokenizer_reads_special_tokens_in_templates_only(tiny_tokenizer_dir):
    tok = load_tokenizer(tiny_tokenizer_dir)
    assert tok.chat_template == get_template("none").jinja()
    assert tok.split_special_tokens is False
    from zhllama.templates import encode_plain_text

    assert tok.eos_token_id not in encode_plain_text(tok, "a </s> b")

import pytest

from zhllama.errors import ZhllamaError
from zhllama.templates import TEMPLATES, alpaca_record_to_messages, encode_messages, get_template

# the templates that render on any vocabulary (llama3, qwen and native need their tokenizers: test_family_templates.py)
ANY_VOCABULARY = sorted(n for n, t in TEMPLATES.items() if not t.special_tokens and n != "native")


def conv(*turns, system=None):
    msgs = [{"role": "system", "content": system}] if system else []
    for i, t in enumerate(turns):
        msgs.append({"role": "user" if i % 2 == 0 else "assistant", "content": t})
    return msgs


def test_alpaca_is_chinese_alpacas_prompt_without_the_lone_space():
    """Chinese-Alpaca's prompt, ending at "Response:": the reply's dummy prefix is the space after it."""
    t = get_template("alpaca")
    text = t.render_text(alpaca_record_to_messages("翻译成英文", "你好"))
    assert text == ("<s>Below is an instruction that describes a task. Write a response that appropriately "
                    "completes the request.\n\n### Instruction:\n翻译成英文\n你好\n\n### Response:")
    assert t.render_text(alpaca_record_to_messages("翻译成英文", "你好", "Hello")).endswith("### Response: Hello</s>")


def test_llama2_zh_uses_short_bilingual_system_prompt():
    text = get_template("llama2-zh").render_text(conv("你好", "你好！", "再见"))
    assert text == ("<s>[INST] <<SYS>>\nYou are a helpful assistant. 你是一个乐于助人的助手。\n<</SYS>>\n\n"
                    "你好 [/INST] 你好！</s><s>[INST] 再见 [/INST]")


def test_chatml_reply_ends_with_im_end_and_stops_on_it():
    t = get_template("chatml")
    text = t.render_text(conv("hi", "hello"), add_generation_prompt=False)
    assert text.endswith("<|im_start|>assistant\n hello<|im_end|></s>")  # " ": the reply's dummy prefix
    assert "<|im_end|>" in t.stop_strings


@pytest.mark.parametrize("name", ANY_VOCABULARY)
def test_training_and_inference_prompts_share_ids(name, tiny_tokenizer):
    """The prompt ids at inference are exactly the prefix of the training ids before the reply."""
    history = conv("第一个问题", "第一个回答", "second question", "second answer")
    train_ids, mask = encode_messages(tiny_tokenizer, name, history, add_generation_prompt=False)
    prompt_ids, _ = encode_messages(tiny_tokenizer, name, history[:-1], add_generation_prompt=True)
    assert train_ids[: len(prompt_ids)] == prompt_ids
    assert all(mask[len(prompt_ids):])  # everything after the prompt is the reply (+ EOS)
    assert train_ids[-1] == tiny_tokenizer.eos_token_id and mask[-1]
    # the first reply is trained too, the user turns are not
    assert 0 < sum(mask[: len(prompt_ids)]) < len(prompt_ids)


@pytest.mark.parametrize("messages, fragment", [
    ([], "empty conversation"),
    ([{"role": "tool", "content": "x"}], "unsupported role"),
    ([{"role": "assistant", "content": "x"}], "expected a user message"),
    ([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}], "expected an assistant message"),
    ([{"role": "user"}], "needs 'role' and 'content'"),
])
def test_bad_conversations_are_clear_errors(messages, fragment):
    with pytest.raises(ZhllamaError, match=fragment):
        get_template("llama2-zh").segments(messages)


def test_unknown_template_lists_choices():
    with pytest.raises(ZhllamaError) as e:
        get_template("vicuna")
    assert "llama2-zh" in str(e.value)

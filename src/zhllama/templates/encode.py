"""A conversation in a format, as token ids: segments tokenized one by one (with the mask of the
response tokens), the tokenizer's own Jinja for ``native``, and the checks that a format fits a
vocabulary before any weights are loaded."""

from __future__ import annotations

from typing import Sequence

from ..errors import ZhllamaError
from .formats import TEMPLATES, ChatTemplate, NativeTemplate, Segment, get_template, split_turns


def encode_plain_text(tokenizer, text: str) -> list[int]:
    """``text``'s ids with no BOS/EOS, reading ``</s>`` and the like as characters, as SentencePiece does.

    Saved tokenizer configs say ``split_special_tokens: false`` so that a chat template's
    ``{{ bos_token }}`` is a token for Hugging Face tools; text from users never is, here.
    """
    return tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"]


def dummy_prefix_separator(tokenizer) -> str:
    """" " when the tokenizer puts SentencePiece's ``▁`` before each text it encodes, else ""."""
    ids = encode_plain_text(tokenizer, "a")
    return " " if ids and tokenizer.convert_ids_to_tokens(ids[0]).startswith("▁") else ""


def special_token_id(tokenizer, token: str) -> int:
    """The id of a special token the template names; a vocabulary without it is refused."""
    token_id = tokenizer.convert_tokens_to_ids(token)
    if token_id is None or token_id == tokenizer.unk_token_id or tokenizer.convert_ids_to_tokens(token_id) != token:
        raise ZhllamaError(f"the tokenizer has no {token} token, which the chat template needs",
                           "use a template that fits the vocabulary (e.g. llama3 for Llama-3, qwen for Qwen, "
                           "native for the tokenizer's own chat_template), or none")
    return token_id


def check_template_fits(tokenizer, template: "ChatTemplate | str") -> "ChatTemplate":
    """Refuse a template the tokenizer cannot render (before any weights are loaded); return the template."""
    template = get_template(template) if isinstance(template, str) else template
    if isinstance(template, NativeTemplate) and not getattr(tokenizer, "chat_template", None):
        raise ZhllamaError("--template native: the tokenizer has no chat_template",
                           "give the template by name (e.g. --template llama3, qwen, chatml), or a tokenizer that ships one")
    for token in template.special_tokens:
        special_token_id(tokenizer, token)
    return template


def chat_template_jinja(tokenizer, template: "ChatTemplate | str") -> str:
    """The Jinja ``chat_template`` that gives ``template``'s ids with ``tokenizer`` (native: the tokenizer's own)."""
    template = check_template_fits(tokenizer, template)
    if isinstance(template, NativeTemplate):
        return tokenizer.chat_template
    return template.jinja(dummy_prefix_separator(tokenizer))


def _encode_run(tokenizer, texts: list[Segment], joint: bool) -> tuple[list[int], list[bool]]:
    """Consecutive text segments.  ``joint``: tokenized as one string (as ``apply_chat_template`` does for
    a tokenizer without a dummy prefix, where byte-level BPE pre-tokens such as ``\\n\\n`` may span two
    segments); each segment starts at the longest common prefix of the whole with its own prefix's ids."""
    if not joint or len(texts) == 1:
        ids, train = [], []
        for seg in texts:
            piece = encode_plain_text(tokenizer, seg.text)
            ids.extend(piece)
            train.extend([seg.train] * len(piece))
        return ids, train
    whole = encode_plain_text(tokenizer, "".join(t.text for t in texts))
    starts, prefix = [], ""
    for seg in texts:
        starts.append(_common_prefix(whole, encode_plain_text(tokenizer, prefix)) if prefix else 0)
        prefix += seg.text
    train = [False] * len(whole)
    for seg, a, b in zip(texts, starts, starts[1:] + [len(whole)]):
        train[a:b] = [seg.train] * (b - a)
    return whole, train


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def _marker_ids(tokenizer, s: Segment) -> list[int]:
    """The id of a bos/eos/special segment (none for BOS when the tokenizer has no BOS, as Qwen's)."""
    if s.kind == "bos":
        return [] if tokenizer.bos_token_id is None else [tokenizer.bos_token_id]
    if s.kind == "eos":
        if tokenizer.eos_token_id is None:
            raise ZhllamaError("the tokenizer has no EOS token", "set eos_token in tokenizer_config.json")
        return [tokenizer.eos_token_id]
    return [special_token_id(tokenizer, s.text)]


def encode_segments(tokenizer, segments: Sequence[Segment]) -> tuple[list[int], list[bool]]:
    """Token ids of ``segments`` and, per id, whether it belongs to the response (trainable)."""
    ids: list[int] = []
    train: list[bool] = []
    joint = dummy_prefix_separator(tokenizer) == "" and getattr(tokenizer, "is_fast", False)
    run: list[Segment] = []

    def add(piece: list[int], flags: list[bool]) -> None:
        ids.extend(piece)
        train.extend(flags)

    for s in segments:
        if s.kind == "text":
            if s.text:
                run.append(s)
            continue
        if run:
            add(*_encode_run(tokenizer, run, joint))
            run = []
        piece = _marker_ids(tokenizer, s)
        add(piece, [s.train] * len(piece))
    if run:
        add(*_encode_run(tokenizer, run, joint))
    return ids, train


def _apply_native(tokenizer, messages: Sequence[dict], add_generation_prompt: bool) -> list[int]:
    out = tokenizer.apply_chat_template(list(messages), add_generation_prompt=add_generation_prompt, tokenize=True,
                                        return_dict=False)
    return list(out["input_ids"] if isinstance(out, dict) or hasattr(out, "keys") else out)


def encode_native(tokenizer, messages: Sequence[dict], add_generation_prompt: bool | None = None):
    """A conversation through the tokenizer's own ``chat_template``: ``apply_chat_template``'s ids, and the
    assistant mask from the template's ``{% generation %}`` blocks when it has them, else by rendering
    prefixes: the tokens between the conversation up to a reply's prompt and up to the reply are the reply's."""
    check_template_fits(tokenizer, TEMPLATES["native"])
    _, turns = split_turns(messages)
    if add_generation_prompt is None:
        add_generation_prompt = turns[-1].assistant is None
    msgs = list(messages)
    ids = _apply_native(tokenizer, msgs, add_generation_prompt)
    if "{% generation %}" in tokenizer.chat_template or "{%- generation %}" in tokenizer.chat_template:
        out = tokenizer.apply_chat_template(msgs, add_generation_prompt=add_generation_prompt, tokenize=True,
                                            return_dict=True, return_assistant_tokens_mask=True)
        return list(out["input_ids"]), [bool(m) for m in out["assistant_masks"]]
    train = [False] * len(ids)
    for i, m in enumerate(msgs):
        if m["role"] != "assistant":
            continue
        a = _common_prefix(ids, _apply_native(tokenizer, msgs[:i], True))
        b = _common_prefix(ids, _apply_native(tokenizer, msgs[:i + 1], False))
        train[a:b] = [True] * max(0, b - a)
    return ids, train


def stop_token_ids(tokenizer, template: "ChatTemplate | str") -> set[int]:
    """Ids that end a reply besides EOS: the template's stop tokens; for ``native``, the special tokens the
    tokenizer's template puts at the end of a reply."""
    template = get_template(template) if isinstance(template, str) else template
    if not isinstance(template, NativeTemplate):
        return {special_token_id(tokenizer, t) for t in template.stop_tokens}
    probe = [{"role": "user", "content": "1"}, {"role": "assistant", "content": "2"}]
    ids, train = encode_native(tokenizer, probe, False)
    special = set(tokenizer.all_special_ids) | {i for i, t in tokenizer.added_tokens_decoder.items() if t.special}
    return {i for i, t in zip(ids, train) if t and i in special}


def encode_messages(tokenizer, template: ChatTemplate | str, messages: Sequence[dict],
                    add_generation_prompt: bool | None = None) -> tuple[list[int], list[bool]]:
    """Render and tokenize a conversation: the one path used by training and inference."""
    if isinstance(template, str):
        template = get_template(template)
    if isinstance(template, NativeTemplate):
        return encode_native(tokenizer, messages, add_generation_prompt)
    return encode_segments(tokenizer, template.segments(messages, add_generation_prompt))

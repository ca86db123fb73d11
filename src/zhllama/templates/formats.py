"""The chat formats: segments, one :class:`ChatTemplate` subclass per format, their Jinja forms, and
the registry (:data:`TEMPLATES`).  Turning a format's segments into token ids is :mod:`.encode`'s."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Literal, Sequence

from ..errors import ZhllamaError

ALPACA_HEADER = (
    "Below is an instruction that describes a task. "
    "Write a response that appropriately completes the request.\n\n"
)
LLAMA2_ZH_SYSTEM = "You are a helpful assistant. 你是一个乐于助人的助手。"
LLAMA2_SYSTEM = (
    "You are a helpful, respectful and honest assistant. Always answer as helpfully as possible, "
    "while being safe.  Your answers should not include any harmful, unethical, racist, sexist, "
    "toxic, dangerous, or illegal content. Please ensure that your responses are socially unbiased "
    "and positive in nature.\n\nIf a question does not make any sense, or is not factually coherent, "
    "explain why instead of answering something not correct. If you don't know the answer to a "
    "question, please don't share false information."
)

QWEN_SYSTEM = "You are a helpful assistant."  # Qwen2's chat_template default (Qwen2.5's names Qwen)
LLAMA3_TOKENS = ("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>")


@dataclass(frozen=True)
class Segment:
    """One piece of a rendered conversation.

    ``kind`` is ``text`` (tokenized), ``bos`` or ``eos`` (the tokenizer's special id), or ``special``
    (``text`` names a special token of the vocabulary, e.g. ``<|eot_id|>``: one id, never split).
    ``train`` marks the assistant's response: loss falls only on those tokens.
    """

    kind: Literal["text", "bos", "eos", "special"]
    text: str = ""
    train: bool = False


BOS = Segment("bos")


def _eos(train: bool) -> Segment:
    return Segment("eos", train=train)


def _special(token: str, train: bool = False) -> Segment:
    return Segment("special", token, train)


@dataclass(frozen=True)
class Turn:
    user: str
    assistant: str | None  # None: the turn the model is asked to answer


def split_turns(messages: Sequence[dict], where: str = "messages") -> tuple[str | None, list[Turn]]:
    """Validate ``messages`` and return (system prompt, turns).

    Allowed shape: an optional leading system message, then user/assistant alternating, starting
    with user.  The last turn may lack its assistant message (a generation prompt).
    """
    if not messages:
        raise ZhllamaError(f"{where}: empty conversation", "give at least one user message")
    system = None
    items = list(messages)
    for i, m in enumerate(items):
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            raise ZhllamaError(f"{where}[{i}]: each message needs 'role' and 'content'", "e.g. {'role': 'user', 'content': '你好'}")
        if m["role"] not in ("system", "user", "assistant"):
            raise ZhllamaError(f"{where}[{i}]: unsupported role '{m['role']}'", "use system, user or assistant")
        if not isinstance(m["content"], str):
            raise ZhllamaError(f"{where}[{i}].content must be text", "give a string")
    if items[0]["role"] == "system":
        system = items[0]["content"]
        items = items[1:]
    turns: list[Turn] = []
    for i in range(0, len(items), 2):
        user = items[i]
        if user["role"] != "user":
            raise ZhllamaError(f"{where}: expected a user message at position {i + (system is not None)}, got '{user['role']}'",
                               "user and assistant messages must alternate, starting with user")
        reply = items[i + 1] if i + 1 < len(items) else None
        if reply is not None and reply["role"] != "assistant":
            raise ZhllamaError(f"{where}: expected an assistant message at position {i + 1 + (system is not None)}, got '{reply['role']}'",
                               "user and assistant messages must alternate")
        turns.append(Turn(user["content"], None if reply is None else reply["content"]))
    if not turns:
        raise ZhllamaError(f"{where}: no user message", "give at least one user message")
    return system, turns


@dataclass(frozen=True)
class ChatTemplate:
    name: str
    description: str
    default_system: str | None = None
    stop_strings: tuple[str, ...] = field(default_factory=tuple)
    special_tokens: tuple[str, ...] = field(default_factory=tuple)  # the vocabulary must hold these
    stop_tokens: tuple[str, ...] = field(default_factory=tuple)  # special tokens that end a reply

    def segments(self, messages: Sequence[dict], add_generation_prompt: bool | None = None) -> list[Segment]:
        """Render ``messages`` into segments.

        ``add_generation_prompt`` defaults to True when the last message is from the user.  When
        it is False every turn must have an assistant reply (training data).
        """
        system, turns = split_turns(messages)
        open_end = turns[-1].assistant is None
        if add_generation_prompt is None:
            add_generation_prompt = open_end
        if open_end and not add_generation_prompt:
            raise ZhllamaError("conversation ends with a user message but no generation prompt was asked for",
                               "end it with an assistant message (training) or let it be answered")
        if not open_end and add_generation_prompt:
            raise ZhllamaError("conversation already ends with an assistant message", "end it with a user message")
        if system is None:
            system = self.default_system
        return list(self._render(system, turns))

    def _render(self, system: str | None, turns: list[Turn]) -> Iterable[Segment]:  # pragma: no cover
        raise NotImplementedError

    def render_text(self, messages: Sequence[dict], add_generation_prompt: bool | None = None,
                    bos: str = "<s>", eos: str = "</s>", separator: str = " ") -> str:
        """The conversation as one string, exactly as :meth:`jinja` renders it.

        ``separator`` stands for the dummy prefix of a text segment that follows another text
        segment (after BOS/EOS the tokenizer adds it itself); ids come from :func:`encode_messages`.
        """
        parts: list[str] = []
        after_text = False
        for s in self.segments(messages, add_generation_prompt):
            if s.kind != "text":
                parts.append({"bos": bos, "eos": eos}.get(s.kind, s.text))
                after_text = False
            elif s.text:
                parts.append((separator if after_text else "") + s.text)
                after_text = True
        return "".join(parts)

    def jinja(self, separator: str = " ") -> str:
        """This template as a Hugging Face ``chat_template``, generated from its constants.

        ``tokenizer.apply_chat_template(messages, add_generation_prompt=True)`` then gives the ids
        of :func:`encode_messages`.  ``separator`` is the dummy prefix ("" for a tokenizer without).
        """
        default = "none" if self.default_system is None else _jinja_str(self.default_system)
        return ("{#- zhllama chat template '" + self.name + "' (zhllama.templates) -#}\n"
                + _JINJA_CHECKS.replace("DEFAULT_SYSTEM", default)
                + self._jinja_body().replace("{{ SEP }}", "{{ " + _jinja_str(separator) + " }}"))

    def _jinja_body(self) -> str:  # pragma: no cover
        raise NotImplementedError


class TurnBlockTemplate(ChatTemplate):
    """Each turn is BOS, one user block (the system text inside the first), the reply, EOS: the shape of
    Alpaca and Llama-2-chat.  A subclass gives its block in Python (:meth:`_user_block`) and in Jinja
    (``jinja_user``, with ``system``, ``message`` and ``loop.first`` in scope)."""

    jinja_user = ""

    def _user_block(self, system: str | None, user: str) -> str:  # pragma: no cover
        raise NotImplementedError

    def _render(self, system, turns):
        for i, t in enumerate(turns):
            yield BOS
            yield Segment("text", self._user_block(system if i == 0 else None, t.user))
            if t.assistant is not None:
                yield Segment("text", t.assistant, train=True)
                yield _eos(True)

    def _jinja_body(self):
        return _jinja_turns(_JINJA_BOS + _jinja_text(self.jinja_user), _jinja_text("message['content']") + _JINJA_EOS)


class AlpacaTemplate(TurnBlockTemplate):
    """Stanford Alpaca's prompt as Chinese-Alpaca trains it (scripts/training/build_dataset.py).

    The no-input form; an instruction's input is appended to the instruction after a newline by
    the data loader.  The system prompt replaces the "Below is an instruction..." header.  Later
    turns repeat the instruction/response block.  The prompt ends with ``### Response:`` and the
    reply's dummy prefix is the space after it (Chinese-Alpaca's ``"### Response: "`` ends with a
    lone ``▁`` token, which a whole-string tokenizer merges with the reply's ``▁`` into ``▁▁``).
    """

    jinja_user = (r"(system.rstrip('\n') + '\n\n' if loop.first and system else '') + '### Instruction:\n' "
                  r"+ message['content'] + '\n\n### Response:'")

    def _user_block(self, system, user):
        head = (system.rstrip("\n") + "\n\n") if system else ""
        return f"{head}### Instruction:\n{user}\n\n### Response:"


class Llama2Template(TurnBlockTemplate):
    """Llama-2-chat: ``<s>[INST] <<SYS>>\\n{system}\\n<</SYS>>\\n\\n{user} [/INST] {reply} </s>``."""

    jinja_user = (r"'[INST] ' + ('<<SYS>>\n' + system + '\n<</SYS>>\n\n' if loop.first and system else '') "
                  r"+ message['content'] + ' [/INST]'")

    def _user_block(self, system, user):
        sys_block = f"<<SYS>>\n{system}\n<</SYS>>\n\n" if system else ""
        return f"[INST] {sys_block}{user} [/INST]"


class ChatMLTemplate(ChatTemplate):
    """ChatML: ``<|im_start|>role\\ncontent<|im_end|>\\n`` blocks; the reply ends with ``<|im_end|>``."""

    def _render(self, system, turns):
        yield BOS
        if system:
            yield Segment("text", f"<|im_start|>system\n{system}<|im_end|>\n")
        for t in turns:
            yield Segment("text", f"<|im_start|>user\n{t.user}<|im_end|>\n<|im_start|>assistant\n")
            if t.assistant is not None:
                yield Segment("text", f"{t.assistant}<|im_end|>", train=True)
                yield _eos(True)

    def _jinja_body(self):
        head = _JINJA_BOS + _jinja_text(r"'<|im_start|>system\n' + system + '<|im_end|>\n' if system else ''")
        user = _jinja_text(r"'<|im_start|>user\n' + message['content'] + '<|im_end|>\n<|im_start|>assistant\n'")
        return head + _jinja_turns(user, _jinja_text("message['content'] + '<|im_end|>'") + _JINJA_EOS)


class RawTemplate(ChatTemplate):
    """No template: the user text is continued directly (pre-trained, non-chat models).

    System and user texts lose their trailing spaces: another text segment follows each, and a
    text segment must not end with a space (see the module docstring).
    """

    def _render(self, system, turns):
        yield BOS
        if system:
            yield Segment("text", system.rstrip(" "))
        for t in turns:
            yield Segment("text", t.user.rstrip(" "))
            if t.assistant is not None:
                yield Segment("text", t.assistant, train=True)
                yield _eos(True)

    def _jinja_body(self):
        head = _JINJA_BOS + _jinja_text("(system or '').rstrip(' ')")
        return head + _jinja_turns(_jinja_text("message['content'].rstrip(' ')"),
                                   _jinja_text("message['content']") + _JINJA_EOS)


class BlockTemplate(ChatTemplate):
    """A template made of one ``_block(role, content, train)`` per message after BOS: the system message
    (when there is one), then each turn's user and assistant blocks (Llama-3, Qwen)."""

    def _block(self, role: str, content: str | None, train: bool = False) -> Iterable[Segment]:  # pragma: no cover
        raise NotImplementedError

    def _render(self, system, turns):
        yield BOS
        if system is not None:
            yield from self._block("system", system)
        for t in turns:
            yield from self._block("user", t.user)
            yield from self._block("assistant", t.assistant, train=True)


class Llama3Template(BlockTemplate):
    """Meta's Llama-3 Instruct format: ``<|start_header_id|>role<|end_header_id|>\\n\\n{content}<|eot_id|>``
    blocks after ``<|begin_of_text|>``, contents trimmed (as Meta's chat_template does); the reply ends
    with ``<|eot_id|>``.  Needs a Llama-3 vocabulary (its header tokens are special tokens)."""

    def _block(self, role: str, content: str | None, train: bool = False) -> Iterable[Segment]:
        yield _special("<|start_header_id|>")
        yield Segment("text", role)
        yield _special("<|end_header_id|>")
        yield Segment("text", "\n\n")
        if content is not None:
            yield Segment("text", content.strip(), train)
            yield _special("<|eot_id|>", train)

    def _jinja_body(self):
        block = "'<|start_header_id|>' + ROLE + '<|end_header_id|>\\n\\n' + CONTENT | trim + '<|eot_id|>'"
        return (_JINJA_BOS
                + "{%- if system is not none -%}{{ " + block.replace("ROLE", "'system'").replace("CONTENT", "system")
                + " }}{%- endif -%}\n{%- for message in turns -%}{{ "
                + block.replace("ROLE", "message['role']").replace("CONTENT", "message['content']")
                + " }}{%- endfor -%}\n{%- if add_generation_prompt -%}"
                  "{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif -%}\n")


class QwenTemplate(BlockTemplate):
    """Qwen's ChatML: ``<|im_start|>role\\n{content}<|im_end|>\\n`` blocks, Qwen's default system message
    when the conversation has none, ``<|im_start|>``/``<|im_end|>`` as the vocabulary's special tokens
    (``chatml`` writes them as text, for vocabularies without them); the reply ends with ``<|im_end|>``."""

    def _block(self, role: str, content: str | None, train: bool = False) -> Iterable[Segment]:
        yield _special("<|im_start|>")
        yield Segment("text", role + "\n")
        if content is not None:
            yield Segment("text", content, train)
            yield _special("<|im_end|>", train)
            yield Segment("text", "\n")

    def _jinja_body(self):
        return (_JINJA_BOS
                + "{%- if system is not none -%}{{ '<|im_start|>system\\n' + system + '<|im_end|>\\n' }}{%- endif -%}\n"
                  "{%- for message in turns -%}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] "
                  "+ '<|im_end|>\\n' }}{%- endfor -%}\n"
                  "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}\n")


class NativeTemplate(ChatTemplate):
    """The tokenizer's own Jinja ``chat_template`` (``--template native``), rendered by
    ``apply_chat_template``: the ids are exactly its ids, for training and inference alike (see
    :func:`encode_native`).  It has no segments of its own: it needs the tokenizer to render."""

    def segments(self, messages, add_generation_prompt=None):
        raise ZhllamaError("the native template is rendered by the tokenizer", "use encode_messages(tokenizer, ...)")

    def jinja(self, separator: str = " ") -> str:
        raise ZhllamaError("the native template is the tokenizer's own chat_template", "use chat_template_jinja(tokenizer, ...)")


def _jinja_str(text: str) -> str:
    """``text`` as a Jinja string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"


def _jinja_text(expr: str) -> str:
    """Jinja that emits a text segment: nothing when empty, the dummy-prefix separator after text."""
    return ("{%- set text = " + expr + " -%}\n"
            "{%- if text -%}{%- if ns.after_text -%}{{ SEP }}{%- endif -%}"
            "{{ text }}{%- set ns.after_text = true -%}{%- endif -%}\n")


_JINJA_BOS = "{{- bos_token or '' -}}{%- set ns.after_text = false -%}\n"
_JINJA_EOS = "{{- eos_token or '' -}}{%- set ns.after_text = false -%}\n"


def _jinja_turns(user: str, assistant: str) -> str:
    return ("{%- for message in turns -%}\n{%- if message['role'] == 'user' -%}\n" + user
            + "{%- else -%}\n" + assistant + "{%- endif -%}\n{%- endfor -%}\n")


# split_turns' and segments' checks in Jinja: an optional system message, then user/assistant alternating
_JINJA_CHECKS = """\
{%- set ns = namespace(after_text=false) -%}
{%- if messages and messages[0]['role'] == 'system' -%}
{%- set system = messages[0]['content'] -%}{%- set turns = messages[1:] -%}
{%- else -%}
{%- set system = DEFAULT_SYSTEM -%}{%- set turns = messages -%}
{%- endif -%}
{%- if not turns -%}{{ raise_exception('no user message: give at least one user message') }}{%- endif -%}
{%- for message in messages -%}
{%- if message['content'] is not string -%}{{ raise_exception('each message content must be text') }}{%- endif -%}
{%- endfor -%}
{%- for message in turns -%}
{%- if message['role'] != ['user', 'assistant'][loop.index0 % 2] -%}
{{- raise_exception('user and assistant messages must alternate, starting with user (after an optional system message)') -}}
{%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt and turns[-1]['role'] != 'user' -%}
{{- raise_exception('the conversation already ends with an assistant message') -}}
{%- elif not add_generation_prompt and turns[-1]['role'] == 'user' -%}
{{- raise_exception('the conversation ends with a user message but add_generation_prompt is false') -}}
{%- endif -%}
"""


TEMPLATES: dict[str, ChatTemplate] = {
    t.name: t
    for t in [
        AlpacaTemplate("alpaca", "Stanford Alpaca prompt as used by Chinese-Alpaca (v1)", ALPACA_HEADER.rstrip("\n")),
        Llama2Template("llama2-zh", "Llama-2-chat format with Chinese-Alpaca-2's short bilingual system prompt",
                       LLAMA2_ZH_SYSTEM),
        Llama2Template("llama2", "Llama-2-chat format with Meta's default system prompt", LLAMA2_SYSTEM),
        ChatMLTemplate("chatml", "ChatML (<|im_start|>/<|im_end|>)", "You are a helpful assistant.",
                       ("<|im_end|>",)),
        Llama3Template("llama3", "Llama-3 Instruct format (<|start_header_id|>...<|eot_id|>); needs a Llama-3 vocabulary",
                       special_tokens=LLAMA3_TOKENS, stop_tokens=("<|eot_id|>",)),
        QwenTemplate("qwen", "Qwen's ChatML with its default system message; needs <|im_start|>/<|im_end|> tokens",
                     QWEN_SYSTEM, special_tokens=("<|im_start|>", "<|im_end|>"), stop_tokens=("<|im_end|>",)),
        NativeTemplate("native", "the tokenizer's own Jinja chat_template (what apply_chat_template renders)"),
        RawTemplate("none", "no template: raw continuation of the text"),
    ]
}


def get_template(name: str) -> ChatTemplate:
    try:
        return TEMPLATES[name]
    except KeyError:
        raise ZhllamaError(f"unknown template '{name}'", f"choose one of: {', '.join(TEMPLATES)}") from None


def alpaca_record_to_messages(instruction: str, input_text: str = "", output: str | None = None,
                              system: str | None = None) -> list[dict]:
    """An Alpaca record as messages; the input joins the instruction after a newline (Chinese-Alpaca)."""
    user = instruction if not input_text else f"{instruction}\n{input_text}"
    msgs: list[dict] = [{"role": "system", "content": system}] if system else []
    msgs.append({"role": "user", "content": user})
    if output is not None:
        msgs.append({"role": "assistant", "content": output})
    return msgs

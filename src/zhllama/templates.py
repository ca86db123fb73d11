"""The one registry of chat templates.

A template turns a conversation (OpenAI-style ``messages``) into a list of :class:`Segment` s:
pieces of text, each marked as prompt or response, plus explicit BOS/EOS markers.  Training
(``zhllama.data.instructions``), inference (``zhllama.infer``), the server and the evaluators all
go through :func:`encode_messages`, so a conversation becomes the very same token ids everywhere.

Segments are tokenized one by one and concatenated, as the Chinese-Alpaca(-2) training scripts do
(they tokenize the prompt and the response separately).  Because the tokenizer adds
SentencePiece's dummy-prefix ``▁`` to each piece, the prompt the model sees at inference ends with
exactly the tokens it ended with in training, and the first response token is the same too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Literal, Sequence

from .errors import ZhllamaError

Role = Literal["system", "user", "assistant"]

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


@dataclass(frozen=True)
class Segment:
    """One piece of a rendered conversation.

    ``kind`` is ``text`` (tokenized), ``bos`` or ``eos`` (the tokenizer's special id).
    ``train`` marks the assistant's response: loss falls only on those tokens.
    """

    kind: Literal["text", "bos", "eos"]
    text: str = ""
    train: bool = False


BOS = Segment("bos")


def _eos(train: bool) -> Segment:
    return Segment("eos", train=train)


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
                    bos: str = "<s>", eos: str = "</s>") -> str:
        """The conversation as one string (for display and docs; ids come from encode_messages)."""
        parts = []
        for s in self.segments(messages, add_generation_prompt):
            parts.append(bos if s.kind == "bos" else eos if s.kind == "eos" else s.text)
        return "".join(parts)


class AlpacaTemplate(ChatTemplate):
    """Stanford Alpaca's prompt as Chinese-Alpaca trains it (scripts/training/build_dataset.py).

    The no-input form with ``### Response: `` (a trailing space); an instruction's input is
    appended to the instruction after a newline by the data loader.  The system prompt replaces
    the "Below is an instruction..." header.  Later turns repeat the instruction/response block.
    """

    def _render(self, system, turns):
        for i, t in enumerate(turns):
            head = (system.rstrip("\n") + "\n\n") if (i == 0 and system) else ""
            yield BOS
            yield Segment("text", f"{head}### Instruction:\n{t.user}\n\n### Response: ")
            if t.assistant is not None:
                yield Segment("text", t.assistant, train=True)
                yield _eos(True)


class Llama2Template(ChatTemplate):
    """Llama-2-chat: ``<s>[INST] <<SYS>>\\n{system}\\n<</SYS>>\\n\\n{user} [/INST] {reply} </s>``."""

    def _render(self, system, turns):
        for i, t in enumerate(turns):
            sys_block = f"<<SYS>>\n{system}\n<</SYS>>\n\n" if (i == 0 and system) else ""
            yield BOS
            yield Segment("text", f"[INST] {sys_block}{t.user} [/INST]")
            if t.assistant is not None:
                yield Segment("text", t.assistant, train=True)
                yield _eos(True)


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


class RawTemplate(ChatTemplate):
    """No template: the user text is continued directly (pre-trained, non-chat models)."""

    def _render(self, system, turns):
        yield BOS
        if system:
            yield Segment("text", system)
        for t in turns:
            yield Segment("text", t.user)
            if t.assistant is not None:
                yield Segment("text", t.assistant, train=True)
                yield _eos(True)


TEMPLATES: dict[str, ChatTemplate] = {
    t.name: t
    for t in [
        AlpacaTemplate("alpaca", "Stanford Alpaca prompt as used by Chinese-Alpaca (v1)", ALPACA_HEADER.rstrip("\n")),
        Llama2Template("llama2-zh", "Llama-2-chat format with Chinese-Alpaca-2's short bilingual system prompt",
                       LLAMA2_ZH_SYSTEM),
        Llama2Template("llama2", "Llama-2-chat format with Meta's default system prompt", LLAMA2_SYSTEM),
        ChatMLTemplate("chatml", "ChatML (<|im_start|>/<|im_end|>)", "You are a helpful assistant.",
                       ("<|im_end|>",)),
        RawTemplate("none", "no template: raw continuation of the text"),
    ]
}


def get_template(name: str) -> ChatTemplate:
    try:
        return TEMPLATES[name]
    except KeyError:
        raise ZhllamaError(f"unknown template '{name}'", f"choose one of: {', '.join(TEMPLATES)}") from None


def encode_segments(tokenizer, segments: Sequence[Segment]) -> tuple[list[int], list[bool]]:
    """Token ids of ``segments`` and, per id, whether it belongs to the response (trainable)."""
    ids: list[int] = []
    train: list[bool] = []
    for s in segments:
        if s.kind == "bos":
            if tokenizer.bos_token_id is None:
                continue
            piece = [tokenizer.bos_token_id]
        elif s.kind == "eos":
            if tokenizer.eos_token_id is None:
                raise ZhllamaError("the tokenizer has no EOS token", "set eos_token in tokenizer_config.json")
            piece = [tokenizer.eos_token_id]
        else:
            if not s.text:
                continue
            piece = tokenizer(s.text, add_special_tokens=False)["input_ids"]
        ids.extend(piece)
        train.extend([s.train] * len(piece))
    return ids, train


def encode_messages(tokenizer, template: ChatTemplate | str, messages: Sequence[dict],
                    add_generation_prompt: bool | None = None) -> tuple[list[int], list[bool]]:
    """Render and tokenize a conversation: the one path used by training and inference."""
    if isinstance(template, str):
        template = get_template(template)
    return encode_segments(tokenizer, template.segments(messages, add_generation_prompt))


def alpaca_record_to_messages(instruction: str, input_text: str = "", output: str | None = None,
                              system: str | None = None) -> list[dict]:
    """An Alpaca record as messages; the input joins the instruction after a newline (Chinese-Alpaca)."""
    user = instruction if not input_text else f"{instruction}\n{input_text}"
    msgs: list[dict] = [{"role": "system", "content": system}] if system else []
    msgs.append({"role": "user", "content": user})
    if output is not None:
        msgs.append({"role": "assistant", "content": output})
    return msgs

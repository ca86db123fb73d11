"""The reference multiple-choice prompt and the four answer-letter tokens.

Prompt (Chinese-LLaMA-Alpaca-2's C-Eval/CMMLU evaluators, CMMLU's ``gen_prompt``)::

    以下是关于{科目}的单项选择题，请直接给出正确答案的选项。\\n\\n
    {dev question}\\nA. ...\\nB. ...\\nC. ...\\nD. ...\\n答案：{X}\\n\\n      (× shots)
    {test question}\\nA. ...\\nB. ...\\nC. ...\\nD. ...\\n答案：

The subject is named in Chinese (the upstream scripts passed the English file key by mistake).
Shots that do not fit the context are dropped from the end; a zero-shot prompt that still does
not fit keeps its last tokens (the question and ``答案：``) in logit mode.

Answer rule (logit mode): the letter whose token has the highest next-token logit after the
prompt.  Which token is "the letter" depends on how the text around it is tokenized:

* raw prompt (no chat template, base models): the prompt is one text, and the few-shot answers
  appear in it as ``答案：A``; SentencePiece adds its ``▁`` only at the start of a text, so the
  letter there is the bare piece ``A``, not ``▁A``.  We take, for each letter, the token that
  tokenizing ``\\n答案：{X}`` adds after ``\\n答案：`` (checked to be exactly one token).
* chat template: the answer would be the assistant's reply, which the templates tokenize as a
  segment of its own (with ``▁``).  We take the first token of the reply ``{X}`` as
  :func:`zhllama.templates.encode_messages` produces it.
"""

from __future__ import annotations

from ..errors import ZhllamaError
from ..templates import encode_messages, encode_plain_text, get_template
from .mc_data import LETTERS, Question

INSTRUCTION = "以下是关于{subject}的单项选择题，请直接给出正确答案的选项。\n\n"
ANSWER_CUE = "\n答案："


def format_question(q: Question, with_answer: bool) -> str:
    text = q.question + "".join(f"\n{letter}. {option}" for letter, option in zip(LETTERS, q.options))
    text += ANSWER_CUE
    if with_answer:
        text += f"{q.answer}\n\n"
    return text


def prompt_text(subject_name: str, shots: list[Question], q: Question) -> str:
    return INSTRUCTION.format(subject=subject_name) + "".join(format_question(s, True) for s in shots) \
        + format_question(q, False)


class PromptEncoder:
    """Token ids of a question's prompt, raw (BOS + text) or rendered with a chat template."""

    def __init__(self, tokenizer, template: str | None = None):
        self.tokenizer = tokenizer
        self.template = get_template(template) if template and template != "none" else None

    def encode(self, text: str) -> list[int]:
        if self.template is not None:
            return encode_messages(self.tokenizer, self.template, [{"role": "user", "content": text}], True)[0]
        bos = [self.tokenizer.bos_token_id] if self.tokenizer.bos_token_id is not None else []
        return bos + encode_plain_text(self.tokenizer, text)

    def letter_ids(self) -> list[int]:
        """The token id of each answer letter at the answer position (see the module docstring)."""
        ids = [self._letter_in_reply(x) if self.template is not None else self._letter_in_text(x) for x in LETTERS]
        if len(set(ids)) != len(ids):
            raise ZhllamaError("the tokenizer gives two answer letters the same token",
                               "use --generate, which reads the letter from generated text")
        return ids

    def _letter_in_text(self, letter: str) -> int:
        tok = self.tokenizer
        base = tok(ANSWER_CUE, add_special_tokens=False)["input_ids"]
        full = tok(ANSWER_CUE + letter, add_special_tokens=False)["input_ids"]
        if full[: len(base)] != base or len(full) != len(base) + 1:
            raise ZhllamaError(f"the tokenizer does not split '答案：{letter}' into '答案：' + one letter token",
                               "use --template or --generate")
        return full[-1]

    def _letter_in_reply(self, letter: str) -> int:
        user = [{"role": "user", "content": "题目"}]
        prompt = encode_messages(self.tokenizer, self.template, user, True)[0]
        full = encode_messages(self.tokenizer, self.template, user + [{"role": "assistant", "content": letter}], False)[0]
        if full[: len(prompt)] != prompt or len(full) <= len(prompt):
            raise ZhllamaError(f"template '{self.template.name}' does not keep the prompt's tokens before the reply",
                               "use --generate")
        return full[len(prompt)]


def fit_prompt(encoder: PromptEncoder, subject_name: str, dev: list[Question], q: Question, shots: int,
               budget: int) -> tuple[list[int], int, bool]:
    """(ids, shots used, truncated): drop shots from the end until the prompt fits ``budget`` tokens."""
    return fit_shots(lambda k: encoder.encode(prompt_text(subject_name, dev[:k], q)), min(shots, len(dev)), budget,
                     encoder.tokenizer.bos_token_id)


def fit_shots(encode_with, shots: int, budget: int, bos_id: int | None) -> tuple[list[int], int, bool]:
    """(ids, shots used, truncated) for ``encode_with(k)``, the prompt ids with k shots: drop shots from the end
    until it fits ``budget`` tokens; a zero-shot prompt that still does not fit keeps BOS and its last tokens."""
    for k in range(shots, -1, -1):
        ids = encode_with(k)
        if len(ids) <= budget:
            return ids, k, False
    head = ids[:1] if bos_id is not None and ids[:1] == [bos_id] else []
    return head + ids[len(ids) - budget + len(head):], 0, True

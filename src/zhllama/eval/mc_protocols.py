"""``eval mc --protocol``: each protocol reproduces one published evaluator's logit-mode answer exactly.

A protocol fixes everything a letter depends on: the prompt bytes (header, few-shot examples,
cells as the reference reads them), the tokenization, which token ids are scored and how the
logits are processed.  Read from the references' code:

* ``ymcui`` / ``ymcui-chat``: Chinese-LLaMA-Alpaca-2 ``scripts/cmmlu/llama2_evaluator.py`` and
  ``scripts/ceval/llama_evaluator.py`` with ``--constrained_decoding True`` (``--with_prompt False``
  / ``True``).  The score of a letter is ``s[▁A] + s[A]`` (ids of ``encode("A")[0]`` and
  ``encode("：A")[-1]``), where ``s`` are the scores ``generate()`` returns for its first step:
  repetition penalty 1.1 over the prompt's ids, then temperature 0.2.
* ``cmmlu``: haonan-li/CMMLU ``src/mp_utils.py`` + ``src/hf_causal_model.py``: a ``题目：`` /
  ``答案是：`` prompt under the Chinese subject name, the raw logit of the bare piece ``A``, shots
  removed longest-first to fit ``--max_length`` (2048).
* ``ceval``: hkust-nlp/ceval ``code/evaluator_series/evaluators/llama.py``: softmax over the
  logits of ``▁A``..``▁D``.
* ``zhllama``: zhllama's own prompt (:mod:`zhllama.eval.mc_prompt`), kept for earlier results.

The reference scripts read the CSV files with ``pandas.read_csv`` and put the cells into the
prompt unstripped (a numeric column comes back as numbers, printed the way Python prints them);
the protocols do the same (:func:`with_cells_as_read`).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ..errors import ZhllamaError
from ..templates import encode_plain_text
from .mc_data import LETTERS, Question, Subject, columns, split_file
from .mc_prompt import fit_shots

PROTOCOL_NAMES = ("ymcui", "ymcui-chat", "cmmlu", "ceval", "zhllama")
YMCUI_HEADER = "以下是中国关于{subject}考试的单项选择题，请选出其中的正确答案。\n\n"
CHAT_TEMPLATE = "[INST] <<SYS>>\n{system_prompt}\n<</SYS>>\n\n{instruction} [/INST]"
CHAT_SYSTEM = {"cmmlu": "你是一个乐于助人的助手。", "ceval": "You are a helpful assistant. 你是一个乐于助人的助手。"}
CMMLU_HEADER = "以下是关于{subject}的单项选择题，请直接给出正确答案的选项。\n\n"
CMMLU_MAX_LENGTH = 2048  # CMMLU's --max_length default


def options_text(q: Question) -> str:
    return "".join(f"\n{letter}. {option}" for letter, option in zip(LETTERS, q.options))


def encode(tokenizer, text: str) -> list[int]:
    """BOS + SentencePiece ids of the whole text, as ``LlamaTokenizer(text)`` and Meta's ``encode(bos=True)``."""
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    return bos + encode_plain_text(tokenizer, text)


class Protocol:
    name = ""
    tasks: tuple[str, ...] = ("cmmlu", "ceval")

    def prompt(self, task: str, subject: Subject, dev: list[Question], q: Question) -> str:
        raise NotImplementedError

    def fit(self, tokenizer, task: str, subject: Subject, q: Question, shots: int,
            budget: int) -> tuple[list[int], int, bool]:
        """(ids, shots used, truncated).  The reference scripts never shorten a prompt; past the context
        this drops shots from the end, like ``zhllama``."""
        dev = subject.dev[:shots]
        return fit_shots(lambda k: encode(tokenizer, self.prompt(task, subject, dev[:k], q)), len(dev), budget,
                         tokenizer.bos_token_id)

    def letter_ids(self, tokenizer) -> list[list[int]]:
        """Per letter, the ids whose scores are added."""
        raise NotImplementedError

    def scores(self, logits, prompt_ids: list[int], letter_ids: list[list[int]]) -> list[float]:
        """The four letter scores from the next-token logits (1-D); the answer is the first best."""
        raise NotImplementedError


def ceval_style_prompt(subject_key: str, dev: list[Question], q: Question) -> str:
    """C-Eval's LLaMA prompt, which Chinese-LLaMA-Alpaca-2 kept: a header only with shots, ``答案：``."""
    head = YMCUI_HEADER.format(subject=subject_key) if dev else ""
    shots = "".join(d.question + options_text(d) + "\n答案：" + str(d.answer) + "\n\n" for d in dev)
    return head + shots + q.question + options_text(q) + "\n答案："


class Ymcui(Protocol):
    def __init__(self, chat: bool):
        self.chat = chat
        self.name = "ymcui-chat" if chat else "ymcui"

    def prompt(self, task, subject, dev, q):
        if not self.chat:
            return ceval_style_prompt(subject.key, dev, q)
        system = CHAT_SYSTEM[task]
        history = ""
        if dev:
            history = CHAT_TEMPLATE.format(system_prompt=system, instruction=YMCUI_HEADER.format(subject=subject.key))
            history += f"好的，我会结合{subject.key}相关知识回答"
            history += "".join("[INST] " + d.question + options_text(d) + "\n答案：[/INST]" + str(d.answer) + "\n"
                               for d in dev)
        return history + CHAT_TEMPLATE.format(system_prompt=system, instruction=q.question + options_text(q) + "\n答案：")

    def letter_ids(self, tokenizer):
        return [[encode_plain_text(tokenizer, x)[0], encode_plain_text(tokenizer, "：" + x)[-1]] for x in LETTERS]

    def scores(self, logits, prompt_ids, letter_ids):
        import torch
        from transformers import RepetitionPenaltyLogitsProcessor, TemperatureLogitsWarper

        ids = torch.tensor([prompt_ids], device=logits.device)
        s = RepetitionPenaltyLogitsProcessor(1.1)(ids, logits.float()[None])
        s = TemperatureLogitsWarper(0.2)(ids, s)[0]
        return [float(s[a] + s[b]) for a, b in letter_ids]


class Cmmlu(Protocol):
    name = "cmmlu"
    tasks = ("cmmlu",)

    def prompt(self, task, subject, dev, q):
        return CMMLU_HEADER.format(subject=subject.name) + "".join(self.example(d) for d in dev) + self.example(q, False)

    @staticmethod
    def example(q: Question, with_answer: bool = True) -> str:
        return "题目：" + q.question + options_text(q) + "\n答案是：" + (f"{q.answer}\n\n" if with_answer else "")

    def fit(self, tokenizer, task, subject, q, shots, budget):
        """CMMLU's ``gen_prompt``: shots of the longest length (BOS counted in each) go first, all at once."""
        header, end = CMMLU_HEADER.format(subject=subject.name), self.example(q, False)
        fixed = len(encode(tokenizer, header)) + len(encode(tokenizer, end))
        if fixed > budget:
            return encode(tokenizer, end), 0, True
        kept = [(e, len(encode(tokenizer, e))) for e in map(self.example, subject.dev[:shots])]
        while kept and sum(n for _, n in kept) >= budget - fixed:
            longest = max(n for _, n in kept)
            kept = [(e, n) for e, n in kept if n != longest]
        return encode(tokenizer, header + "".join(e for e, _ in kept) + end), len(kept), False

    def letter_ids(self, tokenizer):
        ids = [tokenizer.convert_tokens_to_ids(x) for x in LETTERS]
        if None in ids or tokenizer.unk_token_id in ids:
            raise ZhllamaError("the tokenizer has no piece 'A'..'D', which --protocol cmmlu scores",
                               "use --protocol ymcui or ceval")
        return [[i] for i in ids]

    def scores(self, logits, prompt_ids, letter_ids):
        return [float(logits[i].float()) for (i,) in letter_ids]


class Ceval(Protocol):
    name = "ceval"
    tasks = ("ceval",)

    def prompt(self, task, subject, dev, q):
        # The reference's zero-shot branch adds a list to a str and stops; a header-less question is its intent.
        return ceval_style_prompt(subject.key, dev, q)

    def letter_ids(self, tokenizer):
        return [[encode_plain_text(tokenizer, x)[0]] for x in LETTERS]

    def scores(self, logits, prompt_ids, letter_ids):
        import torch

        return torch.softmax(torch.stack([logits[i].float() for (i,) in letter_ids]).cpu(), dim=0).tolist()


def get_protocol(name: str) -> Protocol | None:
    """The protocol called ``name``; None for ``zhllama`` (:class:`zhllama.eval.mc.LogitScorer`)."""
    table = {"ymcui": Ymcui(False), "ymcui-chat": Ymcui(True), "cmmlu": Cmmlu(), "ceval": Ceval()}
    if name not in PROTOCOL_NAMES:
        raise ZhllamaError(f"unknown --protocol '{name}'", f"use one of: {', '.join(PROTOCOL_NAMES)}")
    return table.get(name)


def check_protocol(name: str, task: str, template: str | None, generate: bool) -> None:
    """Before any model work: the protocol exists, evaluates ``task``, and leaves the prompt to itself."""
    protocol = get_protocol(name)
    if protocol is None:
        return
    if task not in protocol.tasks:
        other = " or ".join(n for n in ("ymcui", task) if n in PROTOCOL_NAMES)  # the general one, the benchmark's own
        raise ZhllamaError(f"--protocol {name} reproduces the {name.upper()} evaluator, which has no --task {task}",
                           f"use --protocol {other} with --task {task}")
    if template and template != "none":
        raise ZhllamaError(f"--template is for --protocol zhllama; --protocol {name} writes its reference's prompt",
                           "drop --template (--protocol ymcui-chat is Chinese-Alpaca-2's chat prompt)")
    if generate:
        raise ZhllamaError(f"--generate is for --protocol zhllama; --protocol {name} scores letters from logits",
                           "drop --generate, or add --protocol zhllama")


def with_cells_as_read(task: str, data_dir: str | Path, split: str, subjects: list[Subject]) -> list[Subject]:
    """The subjects with question and option texts as ``pandas.read_csv`` gives them to the reference scripts."""
    root = Path(data_dir)
    return [replace(s, questions=_cells(task, split_file(task, root, split, s.key), s.questions),
                    dev=_cells(task, split_file(task, root, "dev", s.key), s.dev) if s.dev else [])
            for s in subjects]


def _cells(task: str, path: Path, questions: list[Question]) -> list[Question]:
    import pandas as pd

    df = pd.read_csv(path)
    if len(df) != len(questions):
        raise ZhllamaError(f"{path}: pandas reads {len(df)} rows, the CSV reader {len(questions)}",
                           "check the file's quoting and blank lines, or use --protocol zhllama")
    cols = columns(task)
    out = []
    for i, q in enumerate(questions):
        row = df.iloc[i, :]
        out.append(replace(q, question=f"{row[cols['question']]}", options=tuple(f"{row[c]}" for c in LETTERS)))
    return out


class ProtocolScorer:
    """Logit-mode answers under a reference protocol; prompts are scored in right-padded batches."""

    def __init__(self, model, tokenizer, protocol: Protocol, task: str, max_length: int):
        self.model, self.tokenizer, self.protocol, self.task = model, tokenizer, protocol, task
        self.letter_ids = protocol.letter_ids(tokenizer)
        self.max_length = max_length
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    def prepare(self, item, shots: int) -> None:
        item.ids, item.shots, item.truncated = self.protocol.fit(self.tokenizer, self.task, item.subject,
                                                                 item.question, shots, self.max_length)

    def answer(self, items) -> list[dict]:
        from .choice import best_choice, next_token_logits

        logits = next_token_logits(self.model, [it.ids for it in items], self.pad_id)
        out = []
        for row, it in zip(logits, items):
            s = self.protocol.scores(row, it.ids, self.letter_ids)
            out.append({"pred": LETTERS[best_choice(s)], "scores": [round(x, 4) for x in s]})
        return out

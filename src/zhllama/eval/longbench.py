"""LongBench's Chinese subsets (dureader, multifieldqa_zh, vcsum, lsht, passage_retrieval_zh), predicted and
scored exactly as THUDM/LongBench's ``pred.py`` and ``metrics.py`` do.

Scoring is a line-for-line port of ``metrics.py`` and ``eval.py``'s ``scorer`` for these five
subsets: Rouge-L F of the ``rouge`` package over jieba words (dureader, vcsum), F1 over jieba words
after ``normalize_zh_answer`` (multifieldqa_zh), ``classification_score`` (lsht: the first line of
the prediction, every class it names, a class that is part of the answer dropped, the loop's quirk of
skipping the element after a removal kept), ``retrieval_zh_score`` (passage_retrieval_zh: the share of
numbers in the prediction that are the answer's paragraph number); each sample scores its best
answer.  It is ported rather than imported because LongBench is a script folder, not a package;
jieba and rouge are its own libraries (``pip install 'zhllama[longbench]'``).

Prediction follows ``pred.py``: the dataset's prompt (``config/dataset2prompt.json``), truncated in
the middle to ``max_length`` tokens, wrapped in the model's chat template except for lsht, and
greedy decoding of at most ``config/dataset2maxlen.json`` tokens.
"""

from __future__ import annotations

import json
import re
import string
from collections import Counter
from pathlib import Path

from ..errors import ZhllamaError, require_file

CHINESE = ("dureader", "multifieldqa_zh", "vcsum", "lsht", "passage_retrieval_zh")
PROMPTS = {
    "dureader": "请基于给定的文章回答下述问题。\n\n文章：{context}\n\n请基于上述文章回答下面的问题。\n\n问题：{input}\n回答：",
    "multifieldqa_zh": "阅读以下文字并用中文简短回答：\n\n{context}\n\n现在请基于上面的文章回答下面的问题，只告诉我答案，"
                       "不要输出任何其他字词。\n\n问题：{input}\n回答：",
    "vcsum": "下面有一段会议记录，请你阅读后，写一段总结，总结会议的内容。\n会议记录：\n{context}\n\n会议总结：",
    "lsht": "请判断给定新闻的类别，下面是一些例子。\n\n{context}\n{input}",
    "passage_retrieval_zh": "以下是若干段落文字，以及其中一个段落的摘要。请确定给定的摘要出自哪一段。\n\n{context}\n\n下面是一个摘要\n\n"
                            "{input}\n\n请输入摘要所属段落的编号。答案格式必须是\"段落1\"，\"段落2\"等格式\n\n答案是：",
}
MAX_NEW_TOKENS = {"dureader": 128, "multifieldqa_zh": 64, "vcsum": 512, "lsht": 64, "passage_retrieval_zh": 32}
FIRST_LINE = {"lsht"}  # eval.py scores only the first line of these (trec, triviaqa, samsum, lsht)
NO_CHAT = {"lsht"}  # pred.py does not wrap these in the chat prompt
CN_PUNCTUATION = ("！？｡。＂＃＄％＆＇（）＊＋，－／：；＜＝＞＠［＼］＾＿｀｛｜｝～｟｠｢｣､、〃》「」『』【】〔〕〖〗〘〙〚〛〜〝〞〟〰〾〿–—"
                  "‘’‛“”„‟…‧﹏.")
INSTALL_HINT = "pip install 'zhllama[longbench]' (jieba and rouge, LongBench's own scoring libraries)"


def _jieba():
    try:
        import jieba
    except ImportError:
        raise ZhllamaError("LongBench scoring needs jieba, which is not installed", INSTALL_HINT) from None
    jieba.setLogLevel(60)  # its "Building prefix dict" lines are not zhllama's output
    return jieba


def _words(text: str) -> list[str]:
    return list(_jieba().cut(text, cut_all=False))


def normalize_zh_answer(s: str) -> str:
    """Lower case, no punctuation (ASCII and Chinese), no whitespace."""
    punctuation = set(string.punctuation + CN_PUNCTUATION)
    return "".join("".join(ch for ch in s.lower() if ch not in punctuation).split())


def f1_score(prediction: list[str], ground_truth: list[str]) -> float:
    common = Counter(prediction) & Counter(ground_truth)
    same = sum(common.values())
    if same == 0:
        return 0
    precision, recall = same / len(prediction), same / len(ground_truth)
    return (2 * precision * recall) / (precision + recall)


def qa_f1_zh_score(prediction: str, ground_truth: str, **kwargs) -> float:
    pred = [t for t in (normalize_zh_answer(w) for w in _words(prediction)) if t]
    truth = [t for t in (normalize_zh_answer(w) for w in _words(ground_truth)) if t]
    return f1_score(pred, truth)


def rouge_score(prediction: str, ground_truth: str, **kwargs) -> float:
    try:
        from rouge import Rouge
    except ImportError:
        raise ZhllamaError("LongBench scoring needs rouge, which is not installed", INSTALL_HINT) from None
    try:
        scores = Rouge().get_scores([prediction], [ground_truth], avg=True)
    except Exception:  # metrics.py's bare except: an empty prediction, a text too long for its recursion
        return 0.0
    return scores["rouge-l"]["f"]


def rouge_zh_score(prediction: str, ground_truth: str, **kwargs) -> float:
    return rouge_score(" ".join(_words(prediction)), " ".join(_words(ground_truth)))


def classification_score(prediction: str, ground_truth: str, **kwargs) -> float:
    matches = [name for name in kwargs["all_classes"] if name in prediction]
    for term in matches:  # removing while iterating skips the next element: metrics.py's behaviour, kept
        if term in ground_truth and term != ground_truth:
            matches.remove(term)
    return 1.0 / len(matches) if ground_truth in matches else 0.0


def retrieval_zh_score(prediction: str, ground_truth: str, **kwargs) -> float:
    truth = re.findall(r"段落(\d+)", ground_truth)[0]
    numbers = re.findall(r"\d+", prediction)
    right = sum(str(n) == str(truth) for n in numbers)
    return 0.0 if not numbers else float(right / len(numbers))


METRICS = {"dureader": rouge_zh_score, "multifieldqa_zh": qa_f1_zh_score, "vcsum": rouge_zh_score,
           "lsht": classification_score, "passage_retrieval_zh": retrieval_zh_score}


def score_sample(dataset: str, prediction: str, answers: list[str], all_classes=None) -> float:
    """One sample's score in [0, 1] (LongBench prints 100 x the mean): its best answer's."""
    if dataset in FIRST_LINE:
        prediction = prediction.lstrip("\n").split("\n")[0]
    return max([0.0] + [METRICS[dataset](prediction, a, all_classes=all_classes) for a in answers])


def check_dataset(dataset: str) -> str:
    if dataset not in METRICS:
        raise ZhllamaError(f"unknown LongBench subset '{dataset}'", f"one of {', '.join(CHINESE)}")
    return dataset


def dataset_of(path: str | Path) -> str:
    """A LongBench file's subset: its name (``dureader.jsonl``), as LongBench ships them."""
    return check_dataset(Path(path).name.removesuffix(".jsonl"))


def read_longbench(path: str | Path, limit: int | None = None) -> list[dict]:
    """The records of one LongBench JSONL file (fields input, context, answers, all_classes), checked."""
    p = require_file(path, "LongBench file")
    records = []
    with p.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise ZhllamaError(f"{p}:{n}: not JSON ({e.msg})", "give LongBench's JSONL file") from None
            missing = [k for k in ("input", "context", "answers") if k not in record]
            if missing or not isinstance(record["answers"], list):
                raise ZhllamaError(f"{p}:{n}: a LongBench record needs input, context and a list of answers"
                                   f"{' (missing ' + ', '.join(missing) + ')' if missing else ''}",
                                   "give LongBench's JSONL file (data/<subset>.jsonl)")
            records.append(record)
            if limit is not None and len(records) >= limit:
                break
    if not records:
        raise ZhllamaError(f"{p}: no records", "give LongBench's JSONL file")
    return records


def prompt_ids(engine, record: dict, dataset: str, max_length: int) -> list[int]:
    """pred.py's prompt: the dataset's format, cut in the middle to ``max_length`` tokens, then the chat template."""
    tokenizer = engine.tokenizer
    prompt = PROMPTS[dataset].format(**record)
    ids = tokenizer(prompt, add_special_tokens=True)["input_ids"]
    if len(ids) > max_length:
        half = max_length // 2
        prompt = tokenizer.decode(ids[:half], skip_special_tokens=True) + \
            tokenizer.decode(ids[-half:], skip_special_tokens=True)
    if dataset in NO_CHAT:
        return engine.text_prompt(prompt)
    return engine.chat_prompt([{"role": "user", "content": prompt}], MAX_NEW_TOKENS[dataset])


def predict(engine, records: list[dict], dataset: str, max_length: int | None = None,
            batch_size: int = 4) -> list[str]:
    """Greedy predictions (pred.py: do_sample=False, no repetition penalty) of ``records``."""
    from ..infer.sampling import SamplingParams

    max_new = MAX_NEW_TOKENS[dataset]
    limit = min(max_length or engine.context_length, engine.context_length - max_new)
    params = SamplingParams(max_new_tokens=max_new, temperature=0.0, repetition_penalty=1.0)
    out: list[str] = []
    for start in range(0, len(records), batch_size):
        prompts = [prompt_ids(engine, r, dataset, limit) for r in records[start:start + batch_size]]
        out += [c.text for c in engine.generate(prompts, params)]
    return out


def score(dataset: str, records: list[dict], predictions: list[str]) -> list[float]:
    """Each sample's score in [0, 1]; LongBench's figure is ``round(100 * mean, 2)``."""
    return [score_sample(dataset, p, r["answers"], r.get("all_classes")) for p, r in zip(predictions, records)]

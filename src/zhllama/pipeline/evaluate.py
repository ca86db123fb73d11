"""The eval stage: bits per character of every model the run produced, task accuracy before and
after instruction tuning and preference tuning on the questions of ``eval.tasks`` (with the
majority-class baseline, the number of questions per task and the split they are from: the demo
scores its test split), the preference margin of the tuned models on ``eval.pairs``, and the final
model's answers."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass

from ..errors import ZhllamaError
from ..io import read_json, write_json_atomic
from ..meta import read_meta
from .runner import StageRun


@dataclass
class EvalPlan:
    """The eval stage's settings: ``eval:``'s (its files are inputs) and what the plan knows of the models."""

    max_chars: int
    max_examples: int
    question: str | None
    template: str  # the recipe's once a model is instruction-tuned, else none
    final: str  # the model the pipeline ends with (it answers the showcase questions)
    before_sft: str | None
    scored: dict[str, str]  # before_sft / after_sft / after_dpo ... -> model whose task accuracy is measured
    showcase: int = 0
    prompt: str | None = None
    speed_chars: int = 100
    arms: dict[str, str] | None = None  # pt / ablation -> model, timed side by side


def load_records(path: str, where: str) -> list[dict]:
    data = read_json(path, f"{where}: give an Alpaca JSON list")
    return data if isinstance(data, list) else []


def split_of(records: list[dict]) -> str | None:
    """The split the records say they are from (``dev`` or ``test`` for builtin:tasks), if they all say the same."""
    splits = {r.get("split") for r in records if isinstance(r, dict)}
    return next(iter(splits)) if len(splits) == 1 and None not in splits else None


def file_split(path: str) -> str | None:
    """:func:`split_of` a JSON list file (builtin:task_pairs writes one); None for other files."""
    if not str(path).endswith(".json"):
        return None
    try:
        return split_of(load_records(path, "eval.pairs"))
    except ZhllamaError:
        return None


def checkable(records: list[dict], per_task: int) -> list[dict]:
    """Records with a ``task`` and ``choices``, at most ``per_task`` of each task."""
    seen: dict[str, int] = defaultdict(int)
    out = []
    for r in records:
        if isinstance(r, dict) and r.get("task") and r.get("choices") and r.get("output") in r["choices"]:
            if seen[r["task"]] < per_task:
                seen[r["task"]] += 1
                out.append(r)
    return out


def evaluate_models(ctx: StageRun) -> dict:
    from ..align.reward import pair_margins
    from ..data.preference import load_pairs
    from ..data.tasks import majority_baseline
    from ..eval.choice import task_accuracy
    from ..model.load import load_model
    from .metrics import bits_per_char, read_validation_texts

    s: EvalPlan = ctx.settings
    text_files = ctx.inputs.get("text", [])
    texts = read_validation_texts(text_files, s.max_chars)
    records = load_records(ctx.inputs["tasks"], "eval.tasks") if "tasks" in ctx.inputs else []
    held = checkable(records, s.max_examples)
    first = checkable(records, s.showcase)[: s.showcase]  # the file's first N questions, as they come
    if "tasks" in ctx.inputs and not held:
        raise ZhllamaError(f"eval.tasks: no records with 'task', 'choices' and an 'output' among the choices in {ctx.inputs['tasks']}",
                           "use builtin:tasks?split=test or records in that form")
    models = ctx.inputs["models"]
    template = final_template(s)
    pairs = load_pairs([ctx.inputs["pairs"]])[0] if "pairs" in ctx.inputs else []
    report: dict = {"bits_per_char": {}, "accuracy": {}, "examples": len(held)}
    if held:
        report["n"] = dict(sorted(Counter(r["task"] for r in held).items()))  # questions per task, for the standard error
        report["split"] = split_of(held)
    if pairs:
        report["pairs_split"] = file_split(ctx.inputs["pairs"])
    for label, path in models.items():
        model, tok = load_model(path, device="cpu")
        context = min(512, getattr(model.config, "max_position_embeddings", 512))
        if texts:
            report["bits_per_char"][label] = round(bits_per_char(model, tok, texts, context), 4)
        for key in [k for k, p in s.scored.items() if p == path]:
            if held:
                report["accuracy"][key] = task_accuracy(model, tok, template, held)
            if pairs and key != "before_sft":
                report.setdefault("pair_margin", {})[key] = pair_margins(model, tok, template, pairs)
        if path == s.final:
            report.update(final_model_texts(model, tok, template, s, first))
        generated_texts(report, label, path, model, tok, s, texts)
        del model
    add_context_chars(report, s.arms or {}, text_files)
    if held:
        train = [r for path in ctx.inputs.get("sft_train", []) for r in load_records(path, "sft.train_files")]
        report["accuracy"]["majority"] = {t: majority_baseline(train, held, t) for t in sorted({r["task"] for r in held})}
    ctx.out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(ctx.out / "eval.json", report)
    return report


CONTINUED = ("English base", "pre-trained")  # the free-form continuation, side by side


def final_model_texts(model, tok, template: str, s: EvalPlan, first: list[dict]) -> dict:
    """The final model's answers: the first scored questions (``showcase``), and ``question``."""
    from .showcase import answer, showcase

    out: dict = {}
    if first:
        out["showcase"] = showcase(model, tok, template, first)
    if s.question:
        out["answer"] = {"question": s.question,
                         "text": answer(model, tok, template, [{"role": "user", "content": s.question}])}
    return out


def generated_texts(report: dict, label: str, path: str, model, tok, s: EvalPlan, texts: list[str]) -> None:
    """The free-form continuation (English base, pre-trained) and the arms' generation speed."""
    from .showcase import chars_per_second, continuation, prompts_from

    if s.prompt and label in CONTINUED:
        report.setdefault("continuation", {"prompt": s.prompt, "text": {}})["text"][label] = continuation(model, tok, s.prompt)
    prompts = prompts_from(texts)
    for arm, arm_path in (s.arms or {}).items():
        if path == arm_path and prompts:
            report.setdefault("arms", {})[arm] = {"context": model.config.max_position_embeddings,
                                                  **chars_per_second(model, tok, prompts, s.speed_chars)}


def add_context_chars(report: dict, arms: dict, text_files: list[str]) -> None:
    """Each arm's Chinese characters per token on the validation text, per context window, and per second
    of decoding at that rate (tokens/s x characters/token: the speed the vocabulary gives on real text)."""
    from .metrics import chinese_chars_per_token

    for arm, path in arms.items():
        if arm in report.get("arms", {}):
            cpt = chinese_chars_per_token({arm: path}, text_files)[arm]
            measured = report["arms"][arm]
            measured.update(chinese_chars_per_token=cpt, context_chars=round(cpt * measured["context"]),
                            text_chars_per_second=round(cpt * measured["tokens_per_second"], 1))


def final_template(s: EvalPlan) -> str:
    """The template the final model records in its zhllama.json (the one it was tuned with), else the
    pipeline's; the model before instruction tuning is asked in the same format, for a fair comparison."""
    if s.before_sft is None:
        return s.template
    return read_meta(s.final).template or s.template

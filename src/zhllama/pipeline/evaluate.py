"""The eval stage: bits per character of every model the run produced, held-out task accuracy
before and after instruction tuning (with the majority-class baseline), and one answer."""

from __future__ import annotations

from collections import defaultdict

from ..errors import ZhllamaError
from ..io import read_json
from .runner import StageRun


def load_records(path: str, where: str) -> list[dict]:
    data = read_json(path, f"{where}: give an Alpaca JSON list")
    return data if isinstance(data, list) else []


def checkable(records: list[dict], per_task: int) -> list[dict]:
    """Held-out records with a ``task`` and ``choices``, at most ``per_task`` of each task."""
    seen: dict[str, int] = defaultdict(int)
    out = []
    for r in records:
        if isinstance(r, dict) and r.get("task") and r.get("choices") and r.get("output") in r["choices"]:
            if seen[r["task"]] < per_task:
                seen[r["task"]] += 1
                out.append(r)
    return out


def evaluate_models(ctx: StageRun) -> dict:
    from ..data.tasks import majority_baseline
    from ..eval.choice import task_accuracy
    from ..model.load import load_model
    from .metrics import bits_per_char, read_texts

    s = ctx.settings
    texts = read_texts([v for k, v in ctx.inputs.items() if k.startswith("text[")], s["max_chars"])
    held = checkable(load_records(ctx.inputs["tasks"], "eval.tasks"), s["max_examples"]) if "tasks" in ctx.inputs else []
    if "tasks" in ctx.inputs and not held:
        raise ZhllamaError(f"eval.tasks: no records with 'task', 'choices' and an 'output' among the choices in {ctx.inputs['tasks']}",
                           "use builtin:tasks?split=heldout or records in that form")
    models = {k.split(":", 1)[1]: v for k, v in ctx.inputs.items() if k.startswith("model:")}
    template = final_template(s)
    report: dict = {"bits_per_char": {}, "accuracy": {}, "examples": len(held)}
    for label, path in models.items():
        model, tok = load_model(path, device="cpu")
        context = min(512, getattr(model.config, "max_position_embeddings", 512))
        if texts:
            report["bits_per_char"][label] = round(bits_per_char(model, tok, texts, context), 4)
        if held and path in (s["before_sft"], s["final"]):
            key = "after_sft" if path == s["final"] else "before_sft"
            report["accuracy"][key] = task_accuracy(model, tok, template, held)
        if path == s["final"] and s["question"]:
            report["answer"] = {"question": s["question"], "text": answer(model, tok, template, s["question"])}
        del model
    if held:
        train = [r for k, v in ctx.inputs.items() if k.startswith("sft_train[") for r in load_records(v, "sft.train_files")]
        report["accuracy"]["majority"] = {t: majority_baseline(train, held, t) for t in sorted({r["task"] for r in held})}
    ctx.out.mkdir(parents=True, exist_ok=True)
    from ..io import write_json_atomic

    write_json_atomic(ctx.out / "eval.json", report)
    return report


def final_template(settings: dict) -> str:
    """The template the final model records in its zhllama.json (the one it was tuned with), else the
    pipeline's; the model before instruction tuning is asked in the same format, for a fair comparison."""
    from ..meta import read_meta

    if settings.get("before_sft") is None:
        return settings["template"]
    return read_meta(settings["final"]).template or settings["template"]


def answer(model, tokenizer, template: str, question: str) -> str:
    """Greedy answer through the one generation engine."""
    from ..infer.engine import Engine
    from ..infer.sampling import SamplingParams

    engine = Engine(model, tokenizer, template=template)
    prompt = engine.chat_prompt([{"role": "user", "content": question}], max_new_tokens=32)
    (done,) = engine.generate([prompt], SamplingParams(max_new_tokens=32, temperature=0.0, repetition_penalty=1.0))
    return done.text.strip()

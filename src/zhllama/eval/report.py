"""``zhllama eval report``: what an adaptation gained and cost, base against adapted, with standard errors.

Every evaluation the user gives data for is run on the base and on each adapted model, item by
item, so each difference is a paired one: the mean of the per-item differences (adapted - base)
and its standard error, sd / sqrt(n).  Items: a text for bits per character (lower is better), a
question for C-Eval/CMMLU and MMLU accuracy, a sample for LongBench; passkey retrieval by length has
one random key per trial (seeded, so both models see the same keys) and its standard error is the
binomial one of the two accuracies.  The report records the command, each data file's sha256 and
every per-item value (``report.json``), a table (``report.md``) and a plot of the differences
(``report.png``).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import ZhllamaError
from .config import ReportConfig
from .mc_benchmarks import MC_BENCHMARKS
from .task import EvalTask


@dataclass
class Metric:
    """One row of the report: per-model values of its items (aligned across models) and how to read them."""

    name: str
    unit: str  # "bits/char", "% correct", "score"
    higher_is_better: bool
    items: dict[str, list[float]] = field(default_factory=dict)  # model label -> per-item values
    pooled: dict[str, float] = field(default_factory=dict)  # model label -> the headline figure
    paired: bool = True

    def difference(self, base: str, model: str) -> tuple[float, float | None]:
        """(headline of model - headline of base, its standard error)."""
        a, b = self.items[base], self.items[model]
        delta = self.pooled[model] - self.pooled[base]
        scale = 100.0 if self.unit == "% correct" else 1.0
        if self.paired:
            return delta, _paired_se([y - x for x, y in zip(a, b)], scale)
        sa, sb = _binomial_se(a, scale), _binomial_se(b, scale)
        return delta, None if sa is None or sb is None else math.hypot(sa, sb)


def _paired_se(diffs: list[float], scale: float) -> float | None:
    n = len(diffs)
    if n < 2:
        return None
    mean = sum(diffs) / n
    var = sum((d - mean) ** 2 for d in diffs) / (n - 1)
    return scale * math.sqrt(var / n)


def _binomial_se(hits: list[float], scale: float) -> float | None:
    n = len(hits)
    if n < 1:
        return None
    p = sum(hits) / n
    return scale * math.sqrt(p * (1 - p) / n) if n > 1 else None


def sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    for p in sorted(Path(path).rglob("*")) if Path(path).is_dir() else [Path(path)]:
        if p.is_file():
            h.update(p.relative_to(path).as_posix().encode() if Path(path).is_dir() else b"")
            h.update(p.read_bytes())
    return h.hexdigest()


# ----- the evaluations, one model at a time -----

def bits_per_char(engine, texts: list[str], context: int | None) -> tuple[list[float], float]:
    """Per text bits/char, and the pooled figure (all bits over all characters)."""
    from .ppl import score_ids, text_ids

    window = min(context or engine.context_length, engine.context_length)
    per, bits, chars = [], 0.0, 0
    for text in texts:
        nll, _ = score_ids(engine.model, text_ids(engine.tokenizer, text), window, max(1, window // 2))
        per.append(nll / math.log(2) / len(text))
        bits, chars = bits + nll / math.log(2), chars + len(text)
    return per, bits / chars


def mc_correct(engine, model: str, task: str, data_dir: str, out: Path, subjects: list[str] | None, shots: int,
               batch_size: int) -> list[float]:
    """C-Eval/CMMLU through ``eval mc`` (the ymcui protocol), one 0/1 per question in file order."""
    from .mc import McSettings, evaluate_mc, read_predictions
    from .mc_protocols import ProtocolScorer, get_protocol

    split = MC_BENCHMARKS[task].splits[0]  # the benchmark's default split (CMMLU: test, C-Eval: val)
    max_length = engine.context_length
    settings = McSettings(task=task, split=split, shots=shots, model=model, max_length=max_length)
    scorer = ProtocolScorer(engine.model, engine.tokenizer, get_protocol("ymcui"), task, max_length)
    evaluate_mc(settings, data_dir, out, subjects, batch_size, overwrite=True, progress=False, scorer=scorer)
    done = read_predictions(out / "predictions.jsonl")
    return [float(rec["correct"]) for _, rec in sorted(done.items())]


def passkey_hits(engine, lengths: list[int], trials: int, seed: int) -> dict[int, list[float]]:
    """Per length, one 0/1 per trial (the key in the middle of the filler)."""
    from .passkey import passkey_accuracy

    result = passkey_accuracy(engine, lengths, [0.5], trials, seed=seed)
    return {n: [1.0] * round(acc * trials) + [0.0] * (trials - round(acc * trials))
            for n, acc in zip(lengths, result.accuracy[0])}


def longbench_scores(engine, path: str, limit: int | None, max_length: int | None) -> tuple[str, list[float]]:
    from . import longbench as LB

    dataset = LB.dataset_of(path)
    records = LB.read_longbench(path, limit)
    return dataset, LB.score(dataset, records, LB.predict(engine, records, dataset, max_length))


# ----- running it -----

def report_command(cfg) -> list[str]:
    """The command line that reproduces ``cfg`` (its options that differ from their defaults), for the record."""
    from dataclasses import fields

    command = ["zhllama", "eval", "report"]
    for f in fields(cfg):
        value = getattr(cfg, f.name)
        default = f.default_factory() if callable(f.default_factory) else f.default
        if value == default:
            continue
        flag = "--" + f.name.replace("_", "-")
        if f.name == "model":
            command += [part for v in value for part in (flag, str(v))]
        else:
            command += [flag, *map(str, value if isinstance(value, list) else [value])]
    return command


def run_report(cfg, command: list[str], labels: list[str] | None = None) -> str:
    """Evaluate the base and every adapted model on what ``cfg`` (a ReportConfig) gives; write the report; return
    its table.  ``labels``: the base's and each model's name in the report (default: their folder names; the
    pipeline's report stage names them by stage, its models' folders all being called ``model``)."""
    from ..io import write_json_atomic, write_text_atomic
    from .ppl import read_texts

    if not cfg.model:
        raise ZhllamaError("no adapted model to compare with the base", "give --model DIR (repeatable)")
    if bool(cfg.mc_task) != bool(cfg.mc_data):
        raise ZhllamaError("--mc-task and --mc-data go together", "e.g. --mc-task cmmlu --mc-data data/cmmlu")
    paths = [cfg.base] + list(cfg.model)
    labels = list(labels) if labels else [Path(p).name for p in paths]
    check_labels(labels)
    texts = {lang: read_texts(f)[:cfg.text_limit] for lang, f in (("zh", cfg.zh_text), ("en", cfg.en_text)) if f}
    if not (texts or cfg.mc_task or cfg.mmlu_data or cfg.passkey_lengths or cfg.longbench):
        raise ZhllamaError("nothing to evaluate", "give --zh-text/--en-text, --mc-task with --mc-data, --mmlu-data, "
                                                  "--passkey-lengths or --longbench FILE.jsonl")
    out = Path(cfg.out)
    metrics: dict[str, Metric] = {}
    for label, path in zip(labels, paths):
        _evaluate_model(cfg, label, path, texts, out / label, metrics)
    rows, base, adapted = list(metrics.values()), labels[0], labels[1:]
    md = table(rows, base, adapted)
    data = {k: sha256(v) for k, v in (("zh_text", cfg.zh_text), ("en_text", cfg.en_text), ("mc_data", cfg.mc_data),
                                       ("mmlu_data", cfg.mmlu_data)) if v}
    data.update({f"longbench:{Path(f).name}": sha256(f) for f in cfg.longbench})
    write_json_atomic(out / "report.json", {"command": command, "base": cfg.base, "models": list(cfg.model),
                                            "data_sha256": data, "metrics": metrics_json(rows)})
    write_text_atomic(out / "report.md", f"# Adaptation report: {', '.join(adapted)} against {base}\n\n"
                                         f"`{' '.join(command)}`\n\n{md}")
    plot(rows, base, adapted, out / "report.png", f"{', '.join(adapted)} - {base}")
    return md


def _evaluate_model(cfg, label: str, path: str, texts: dict, out: Path, metrics: dict) -> None:
    from ..infer.engine import Engine

    def record(name, unit, higher, items, pooled, paired=True):
        metric = metrics.setdefault(name, Metric(name, unit, higher, paired=paired))
        metric.items[label], metric.pooled[label] = items, pooled

    engine = Engine.load(path, device=cfg.device, dtype=cfg.dtype)
    for lang, lang_texts in texts.items():
        per, pooled = bits_per_char(engine, lang_texts, cfg.context)
        record(f"{lang} text", "bits/char", False, per, pooled)
    if cfg.mc_task:
        hits = mc_correct(engine, path, cfg.mc_task, cfg.mc_data, out / cfg.mc_task, cfg.mc_subjects, cfg.shots,
                          cfg.batch_size)
        record(MC_BENCHMARKS[cfg.mc_task].title, "% correct", True, hits,
               100 * sum(hits) / len(hits))
    if cfg.mmlu_data:
        from .mmlu import evaluate as mmlu

        hits = [float(r["correct"]) for r in mmlu(engine.model, engine.tokenizer, cfg.mmlu_data, cfg.shots,
                                                  cfg.mmlu_limit, cfg.batch_size)]
        record("MMLU", "% correct", True, hits, 100 * sum(hits) / len(hits))
    if cfg.passkey_lengths:
        for n, hits in passkey_hits(engine, cfg.passkey_lengths, cfg.passkey_trials, cfg.seed).items():
            record(f"passkey {n}", "% correct", True, hits, 100 * sum(hits) / len(hits), paired=False)
    for f in cfg.longbench:
        dataset, scores = longbench_scores(engine, f, cfg.longbench_limit, cfg.context)
        record(f"LongBench {dataset}", "score", True, [100 * s for s in scores], 100 * sum(scores) / len(scores))


# ----- the table and the plot -----

def table(metrics: list[Metric], base: str, models: list[str]) -> str:
    head = ["metric", f"{base} (base)"] + [f"{m}" for m in models] + [f"{m} - base (± SE)" for m in models]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for metric in metrics:
        values = [_fmt(metric.pooled[label], metric.unit) for label in [base] + models]
        diffs = []
        for m in models:
            delta, se = metric.difference(base, m)
            better = (delta > 0) == metric.higher_is_better if delta else None
            mark = "" if better is None else (" ▲" if better else " ▼")
            diffs.append(f"{delta:+.3f} ± {se:.3f}{mark}" if se is not None else f"{delta:+.3f}{mark}")
        lines.append(f"| {metric.name} ({metric.unit}, n={len(metric.items[base])}) | " + " | ".join(values + diffs) + " |")
    return "\n".join(lines) + "\n\n▲ better than the base, ▼ worse (bits/char: lower is better).\n"


def _fmt(value: float, unit: str) -> str:
    return f"{value:.1f}" if unit == "% correct" else f"{value:.4f}" if unit == "bits/char" else f"{value:.2f}"


def plot(metrics: list[Metric], base: str, models: list[str], path: Path, title: str) -> None:
    """Bars of each difference (adapted - base), error bars of one standard error, green where it is better."""
    from ..plots import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(metrics) * len(models) + 2), 4.5))
    width = 0.8 / len(models)
    for k, m in enumerate(models):
        deltas = [metric.difference(base, m) for metric in metrics]
        colors = ["tab:green" if (d > 0) == metric.higher_is_better else "tab:red"
                  for (d, _), metric in zip(deltas, metrics)]
        ax.bar([i + k * width for i in range(len(metrics))], [d for d, _ in deltas], width,
               yerr=[se or 0.0 for _, se in deltas], color=colors, capsize=4, label=m, edgecolor="black")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(metrics))])
    ax.set_xticklabels([f"{metric.name}\n({metric.unit})" for metric in metrics], fontsize=8)
    ax.set_ylabel("adapted - base (± 1 SE)")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)


def metrics_json(metrics: list[Metric]) -> list[dict]:
    return [asdict(m) for m in metrics]


def check_labels(labels: list[str]) -> None:
    if len(set(labels)) != len(labels):
        raise ZhllamaError(f"two models have the same name ({', '.join(labels)})",
                           "give folders with different names (the report labels models by folder name)")


def report_cli(cfg) -> int:
    """``zhllama eval report``: run the report (a :class:`~zhllama.eval.config.ReportConfig`), print the table."""
    print(run_report(cfg, report_command(cfg)), end="")
    print(f"wrote {cfg.out}/report.md, report.json and report.png")
    return 0


TASK = EvalTask("report", ReportConfig, report_cli,
                help="adaptation report: what a model gained and lost against its base",
                description="Evaluate a base model and its adaptations on what you give: bits per character of Chinese "
                            "and English text, C-Eval/CMMLU, an English MMLU-layout set, passkey retrieval by length and "
                            "LongBench's Chinese subsets. Writes OUT/report.md (each difference against the base with its "
                            "standard error), OUT/report.json and OUT/report.png.")

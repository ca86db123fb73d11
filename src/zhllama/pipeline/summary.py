"""The end-of-run summary (built only from the stage manifests, so a cached re-run prints the
same table) and the loss-curve PNG."""

from __future__ import annotations

import math
import unicodedata
from pathlib import Path

from .ablation import ABLATION_LABEL
from .align_stages import TUNED_LABEL  # the preference stages, in pipeline order: dpo, ppo

PLOT_PNG = "bits_per_char.png"
TASK_NAMES = {"sentiment": "sentiment (正面/负面)", "genre": "genre (新闻/评论)", "pos": "part of speech (名词/动词)"}


def _fmt(x, spec: str = "{:.3f}") -> str:
    return "-" if x is None else spec.format(x)


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def standard_error(p: float, n: int) -> float:
    """The standard error of an accuracy ``p`` measured on ``n`` questions: sqrt(p (1 - p) / n)."""
    return math.sqrt(p * (1 - p) / n)


def _acc(p, n=None) -> str:
    """An accuracy with its standard error and n, e.g. ``68.0% ± 3.3 (n=200)`` (just ``68.0%`` when n is unknown)."""
    if p is None or not n:
        return _pct(p)
    return f"{100 * p:.1f}% ± {100 * standard_error(p, n):.1f} (n={n:,})"


def split_name(ev: dict, key: str = "split") -> str:
    """The split the eval stage scored (``test``, ``dev``), or ``held-out`` when its file does not say."""
    return ev.get(key) or "held-out"


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def width(text: str) -> int:
    """Columns a string takes in a terminal (CJK characters take two)."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(width(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(str(c) + " " * (w - width(str(c))) for c, w in zip(r, widths)) + " |"  # noqa: E731
    return [line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"] + [line(r) for r in rows]


def build_summary(name: str, manifests: dict[str, dict]) -> str:
    """A Markdown summary of a run from its manifests (stage name -> manifest)."""
    m = {k: v.get("metrics", {}) for k, v in manifests.items()}
    lines = [f"## zhllama pipeline: {name}", ""]
    rows = []
    tok = m.get("tokenizer", {})
    if "chars_per_token_before" in tok:
        rows.append(["Chinese characters per token", _fmt(tok["chars_per_token_before"]), _fmt(tok["chars_per_token_after"]), ""])
    if "vocab_before" in tok:
        rows.append(["vocabulary", f"{tok['vocab_before']:,}", f"{tok['vocab_after']:,}", ""])
    ev = m.get("eval", {})
    bpc = ev.get("bits_per_char", {})
    if bpc:
        before = bpc.get("resized", bpc.get("English base"))
        rows.append(["validation bits/char (pre-training)", _fmt(before), _fmt(bpc.get("pre-trained")),
                     f"English base: {_fmt(bpc.get('English base'))}" if "English base" in bpc else ""])
        if "instruction-tuned" in bpc:
            rows.append(["validation bits/char (instruction-tuned)", "", _fmt(bpc["instruction-tuned"]),
                         vs_pretrained(bpc, "instruction-tuned")])
    rows += accuracy_rows(ev) + preference_rows(ev)
    if rows:
        lines += table(["metric", "before", "after", "reference"], rows) + [""]
    lines += arms_section(manifests) + bits_by_stage(bpc) + report_section(m.get("report", {}))
    lines += showcase_section(ev) + continuation_section(ev)
    if plotted(manifests):
        lines += [f"Plot: {PLOT_PNG} (loss of both arms against characters seen; bits/char by stage)", ""]
    lines += table(["stage", "time", "output", "notes"], [stage_row(k, v) for k, v in manifests.items()])
    if ev.get("answer"):
        lines += ["", f"Q: {ev['answer']['question']}", f"A: {ev['answer']['text']}"]
    if "first_reply" in m.get("serve", {}):
        lines += ["", f"Served (serve/out/serve.json): {m['serve']['first_reply']!r}"]
    total = sum(v.get("time_s", 0) for v in manifests.values())
    cpu = sum(v.get("cpu_s", 0) for v in manifests.values())
    lines += ["", f"total stage time: {total:.0f} s" + (f" (CPU time {cpu:.0f} s)" if cpu else "")]
    return "\n".join(lines)


def accuracy_rows(ev: dict) -> list[list[str]]:
    """Accuracy per task on the scored split (± standard error, n): before vs after SFT, then the SFT
    model vs each preference-tuned one."""
    acc, n, split, rows = ev.get("accuracy", {}), ev.get("n", {}), split_name(ev), []
    tasks = [t for t in acc.get("after_sft", {}) if t != "all"]
    for task in tasks:
        rows.append([f"{split} {TASK_NAMES.get(task, task)} accuracy (SFT)", _acc(acc.get("before_sft", {}).get(task), n.get(task)),
                     _acc(acc["after_sft"][task], n.get(task)), f"majority class: {_pct(acc.get('majority', {}).get(task))}"])
    for stage in TUNED_LABEL:
        rows += [[f"{split} {TASK_NAMES.get(task, task)} accuracy ({stage.upper()})", _acc(acc["after_sft"][task], n.get(task)),
                  _acc(acc[f"after_{stage}"].get(task), n.get(task)), "before: the SFT model"]
                 for task in tasks if f"after_{stage}" in acc]
    return rows


def preference_rows(ev: dict) -> list[list[str]]:
    """The preference margin (log p(chosen) - log p(rejected)) on ``eval.pairs`` and bits/char after DPO / PPO."""
    margin, bpc, rows = ev.get("pair_margin", {}), ev.get("bits_per_char", {}), []
    for stage in TUNED_LABEL:
        after, before = margin.get(f"after_{stage}"), margin.get("after_sft", {})
        if after:
            rows.append([f"{split_name(ev, 'pairs_split')} preference margin, nats ({stage.upper()})", _fmt(before.get("mean_margin")),
                         _fmt(after["mean_margin"]), f"chosen preferred: {_pct(before.get('accuracy'))} -> "
                                                     f"{_pct(after['accuracy'])} of {after['pairs']} pairs"])
        if TUNED_LABEL[stage] in bpc:
            rows.append([f"validation bits/char ({stage.upper()})", _fmt(bpc.get("instruction-tuned")), _fmt(bpc[TUNED_LABEL[stage]]),
                         vs_pretrained(bpc, TUNED_LABEL[stage])])
    return rows


def vs_pretrained(bpc: dict, label: str) -> str:
    ratio = _ratio(bpc.get(label), bpc.get("pre-trained"))
    return f"{ratio} the pre-trained model's" if ratio else ""


def _ratio(a, b) -> str:
    return f"{a / b:.2f}x" if a and b else ""


def arms_section(manifests: dict[str, dict]) -> list[str]:
    """Extended vocabulary (pt) vs original tokenizer (ablation), same text, same characters seen."""
    ab = manifests.get("ablation", {}).get("metrics", {})
    if not ab.get("arms"):
        return []
    train = ab["arms"]
    ev = manifests.get("eval", {}).get("metrics", {})
    gen, bpc = ev.get("arms", {}), ev.get("bits_per_char", {})
    time_s = {"pt": manifests.get("pt", {}).get("time_s"), "ablation": manifests["ablation"].get("time_s")}
    pair = lambda f: [f(arm) for arm in ("pt", "ablation")]  # noqa: E731
    rows = [
        ["Chinese characters per token (validation text)", *pair(lambda a: _fmt(gen.get(a, {}).get("chinese_chars_per_token")))],
        ["characters seen in training", *pair(lambda a: f"{train[a]['characters_seen']:,}")],
        ["optimizer steps (same tokens per step)", *pair(lambda a: f"{train[a]['steps']:,}")],
        ["training wall time", *pair(lambda a: _fmt(time_s[a], "{:.1f} s"))],
        ["validation bits/char (lower is better)", _fmt(bpc.get("pre-trained")), _fmt(bpc.get(ABLATION_LABEL))],
        ["tokens decoded per second (greedy)", *pair(lambda a: _fmt(gen.get(a, {}).get("tokens_per_second"), "{:.0f}"))],
        ["Chinese characters per second at the validation text's characters per token",
         *pair(lambda a: _fmt(gen.get(a, {}).get("text_chars_per_second"), "{:.0f}"))],
        ["Chinese characters generated per second (greedy; what the model wrote)",
         *pair(lambda a: _fmt(gen.get(a, {}).get("chars_per_second"), "{:.0f}"))],
        ["Chinese characters per context window", *pair(lambda a: _fmt(gen.get(a, {}).get("context_chars"), "{:,}"))],
    ]
    ratios = [_ratio(gen.get("pt", {}).get("chinese_chars_per_token"), gen.get("ablation", {}).get("chinese_chars_per_token")),
              "", "", _ratio(time_s["pt"], time_s["ablation"]), _ratio(bpc.get("pre-trained"), bpc.get(ABLATION_LABEL)),
              *[_ratio(gen.get("pt", {}).get(key), gen.get("ablation", {}).get(key))
                for key in ("tokens_per_second", "text_chars_per_second", "chars_per_second")],
              _ratio(gen.get("pt", {}).get("context_chars"), gen.get("ablation", {}).get("context_chars"))]
    rows = [r + [x] for r, x in zip(rows, ratios)]
    head = ["same base, same Chinese text", "extended vocabulary (pt)", "original tokenizer (ablation)", "ratio"]
    return ["### Vocabulary extension vs the original tokenizer (byte fallback)", ""] + table(head, rows) + [""]


def bits_by_stage(bpc: dict) -> list[str]:
    """Validation bits/char of every model the run produced, in pipeline order."""
    if not bpc:
        return []
    return ["### Validation bits/char by stage", ""] + table(["model", "bits/char"], [[k, _fmt(v)] for k, v in bpc.items()]) + [""]


def report_section(report: dict) -> list[str]:
    """The report stage's differences against the English base (``eval report``), each with its standard error."""
    diffs = report.get("differences")
    if not diffs:
        return []
    rows = []
    for label, metrics in diffs.items():
        for name, d in metrics.items():
            se = "" if d["se"] is None else f" ± {d['se']:.4f}"
            better = (d["difference"] > 0) == d["higher_is_better"] if d["difference"] else None
            mark = "" if better is None else (" (better)" if better else " (worse)")
            rows.append([label, f"{name} ({d['unit']}, n={d['n']})", f"{d['base']:.4f}", f"{d['model']:.4f}",
                         f"{d['difference']:+.4f}{se}{mark}"])
    head = ["model", "metric", report.get("base", "base"), "model's", "difference ± SE"]
    return ["### Against the English base (report stage: report/out/report.md)", ""] + table(head, rows) + [""]


def showcase_section(ev: dict) -> list[str]:
    """The first scored questions (fixed by the recipe) with the final model's answers."""
    shown = ev.get("showcase")
    if not shown:
        return []
    accuracy = ev.get("accuracy", {})
    last = [f"after_{stage}" for stage in reversed(TUNED_LABEL)] + ["after_sft"]  # the final model's, latest stage first
    acc = next((accuracy[k] for k in last if k in accuracy), {})
    tasks = sorted({r["task"] for r in shown if r.get("task")})
    n, split = ev.get("n", {}), split_name(ev)
    scores = ", ".join(f"{TASK_NAMES.get(t, t)} {_acc(acc.get(t), n.get(t))}" for t in tasks)
    rows = [[str(i + 1), r["input"] or r["instruction"], r["expected"], r["answer"], "✓" if r["correct"] else "✗"]
            for i, r in enumerate(shown)]
    right = sum(r["correct"] for r in shown)
    return ([f"### The first {len(shown)} {split} questions ({right}/{len(shown)} right here; "
             f"{split} accuracy over {ev.get('examples', 0):,} questions: {scores})", ""]
            + table(["#", "question", "expected", "answer", ""], rows) + [""])


def continuation_section(ev: dict) -> list[str]:
    cont = ev.get("continuation")
    if not cont:
        return []
    lines = ["### Free-form continuation (greedy)", "", f"prompt: {cont['prompt']}"]
    lines += [f"{label}: {text.replace(chr(10), ' ')}" for label, text in cont["text"].items()]
    return lines + [""]


def plotted(manifests: dict[str, dict]) -> bool:
    """Whether the run has what :func:`plot_bits_per_char` draws."""
    return bool(arm_curves(manifests) or manifests.get("eval", {}).get("metrics", {}).get("bits_per_char"))


def arm_curves(manifests: dict[str, dict]) -> dict[str, list[tuple[float, float]]]:
    """Training loss of both arms as bits/char against characters seen."""
    ab = manifests.get("ablation", {}).get("metrics", {})
    out = {}
    for arm, label in (("pt", "extended vocabulary (pt)"), ("ablation", "original tokenizer (ablation)")):
        info, curve = ab.get("arms", {}).get(arm), manifests.get(arm, {}).get("metrics", {}).get("loss_curve", {})
        if info and curve.get("train"):
            chars_per_step = info["tokens_per_step"] * info["chars_per_token"]
            out[label] = [(step * chars_per_step, loss / math.log(2) / info["chars_per_token"]) for step, loss in curve["train"]]
    return out


def plot_bits_per_char(manifests: dict[str, dict], png: Path) -> Path | None:
    """Left: both arms' training loss (bits/char) against characters seen; right: validation bits/char by stage."""
    if not plotted(manifests):
        return None
    from ..plots import pyplot, save_figure

    curves, bpc = arm_curves(manifests), manifests.get("eval", {}).get("metrics", {}).get("bits_per_char", {})
    fig, (left, right) = pyplot().subplots(1, 2, figsize=(11, 4), dpi=100)
    for label, points in curves.items():
        left.plot(*zip(*points), label=label)
    left.set(xlabel="characters seen", ylabel="training loss (bits/char)", title="same text, same characters")
    left.grid(alpha=0.3)
    if curves:
        left.legend()
    if bpc:
        right.barh(list(bpc)[::-1], list(bpc.values())[::-1])
        right.set(xlabel="validation bits/char", title="bits/char by stage")
    save_figure(fig, png, bbox_inches="tight")
    return png


def stage_row(name: str, manifest: dict) -> list[str]:
    met = manifest.get("metrics", {})
    notes = []
    if met.get("parameters"):
        p = met["parameters"]
        total = p.get("total") if isinstance(p, dict) else p
        if total:
            notes.append(f"{total / 1e6:.2f} M params")
        if isinstance(p, dict) and p.get("trainable") and p.get("trainable") != total:
            notes.append(f"{p['trainable'] / 1e6:.3f} M trained")
    if "train_loss" in met:
        notes.append(f"train loss {met['train_loss']:.3f}")
    if met.get("eval_loss") is not None:
        notes.append(f"val loss {met['eval_loss']:.3f}")
    if met.get("train_tokens_per_second"):
        notes.append(f"{met['train_tokens_per_second']:,.0f} tok/s")
    if "train_loss" in met.get("then", {}):
        notes.append(f"then: train loss {met['then']['train_loss']:.3f}")
    if "prompt_tokens" in met and "template" in met:
        notes.append(f"served with template {met['template']}: {met['requests']} request(s), prompt tokens "
                     f"{met['prompt_tokens']} = apply_chat_template's")
    if "new_rows" in met:
        notes.append(f"embeddings {met['old_rows']:,} -> {met['new_rows']:,} rows ({met['init']})")
    size = manifest.get("output", {}).get("size_bytes", 0)
    return [name, f"{manifest.get('time_s', 0):.1f} s", _size(size), ", ".join(notes)]


def plot_loss_curves(manifests: dict[str, dict], png: Path) -> Path | None:
    """One panel per training stage (train and validation loss against optimizer step)."""
    curves = {k: v["metrics"]["loss_curve"] for k, v in manifests.items()
              if v.get("metrics", {}).get("loss_curve", {}).get("train")}
    if not curves:
        return None
    from ..plots import draw_loss, pyplot, save_figure

    fig, axes = pyplot().subplots(1, len(curves), figsize=(5 * len(curves), 3.6), dpi=100, squeeze=False)
    for ax, (stage, curve) in zip(axes[0], curves.items()):
        draw_loss(ax, curve, f"{stage} loss")
    save_figure(fig, png, bbox_inches="tight")
    return png

"""The end-of-run summary (built only from the stage manifests, so a cached re-run prints the
same table) and the loss-curve PNG."""

from __future__ import annotations

import unicodedata
from pathlib import Path

TASK_NAMES = {"sentiment": "sentiment (正面/负面)", "genre": "genre (新闻/评论)", "pos": "part of speech (名词/动词)"}


def _fmt(x, spec: str = "{:.3f}") -> str:
    return "-" if x is None else spec.format(x)


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


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
            rows.append(["validation bits/char (final model)", "", _fmt(bpc["instruction-tuned"]), ""])
    acc = ev.get("accuracy", {})
    if acc.get("after_sft"):
        for task in [t for t in acc["after_sft"] if t != "all"]:
            rows.append([f"held-out {TASK_NAMES.get(task, task)} accuracy (SFT)", _pct(acc.get("before_sft", {}).get(task)),
                         _pct(acc["after_sft"][task]), f"majority class: {_pct(acc.get('majority', {}).get(task))}"])
    if rows:
        lines += table(["metric", "before", "after", "reference"], rows) + [""]
    lines += table(["stage", "time", "output", "notes"], [stage_row(k, v) for k, v in manifests.items()])
    if ev.get("answer"):
        lines += ["", f"Q: {ev['answer']['question']}", f"A: {ev['answer']['text']}"]
    total = sum(v.get("time_s", 0) for v in manifests.values())
    lines += ["", f"total stage time: {total:.0f} s"]
    return "\n".join(lines)


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

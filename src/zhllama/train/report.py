"""metrics.json and the loss-curve PNG of a training run (written atomically)."""

from __future__ import annotations

from pathlib import Path

from ..io import write_json_atomic

METRICS_FILE = "metrics.json"
LOSS_PNG = "loss.png"


def loss_series(log_history: list[dict]) -> dict[str, list[tuple[int, float]]]:
    """``{"train": [(step, loss)], "validation": [(step, eval_loss)]}`` from Trainer's log history."""
    train = [(int(h["step"]), float(h["loss"])) for h in log_history if "loss" in h and "step" in h]
    val = [(int(h["step"]), float(h["eval_loss"])) for h in log_history if "eval_loss" in h and "step" in h]
    return {"train": train, "validation": val}


def plot_loss(series: dict, path: Path, title: str) -> None:
    from ..plots import draw_loss, pyplot, save_figure

    fig, ax = pyplot().subplots(figsize=(7, 4), dpi=100)
    draw_loss(ax, series, title)
    save_figure(fig, path, bbox_inches="tight")


def write_run_outputs(out: Path, summary: dict, log_history: list[dict]) -> None:
    series = loss_series(log_history)
    plot_loss(series, out / LOSS_PNG, f"zhllama train {summary.get('stage', '')}")
    write_json_atomic(out / METRICS_FILE, {**summary, "loss_curve": series, "log_history": log_history})


def read_run_outputs(out: str | Path) -> dict | None:
    """What :func:`write_run_outputs` wrote into ``out`` (summary, ``loss_curve``, ``log_history``); None before it has."""
    from ..io import read_json

    p = Path(out) / METRICS_FILE
    return read_json(p, "delete the file, or re-run the training") if p.is_file() else None

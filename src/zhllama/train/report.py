"""metrics.json and the loss-curve PNG of a training run (written atomically)."""

from __future__ import annotations

import os
import tempfile
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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    for name, style in (("train", "-"), ("validation", "o--")):
        if series[name]:
            steps, losses = zip(*series[name])
            ax.plot(steps, losses, style, label=name)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".png")
    os.close(fd)
    try:
        fig.savefig(tmp, format="png", bbox_inches="tight")
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_run_outputs(out: Path, summary: dict, log_history: list[dict]) -> None:
    series = loss_series(log_history)
    plot_loss(series, out / LOSS_PNG, f"zhllama train {summary.get('stage', '')}")
    write_json_atomic(out / METRICS_FILE, {**summary, "loss_curve": series, "log_history": log_history})

"""PNG plots shared by the stages (loss curves, tokenizer comparisons), written atomically."""

from __future__ import annotations

from pathlib import Path

LossSeries = dict[str, list[tuple[int, float]]]


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def draw_loss(ax, series: LossSeries, title: str) -> None:
    """Training loss as a line and validation loss as dots, against optimizer steps."""
    for name, style in (("train", "-"), ("validation", "o--")):
        if series.get(name):
            steps, losses = zip(*series[name])
            ax.plot(steps, losses, style, label=name)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()


def save_figure(fig, path: str | Path, **savefig_kwargs) -> Path:
    """Save ``fig`` as PNG to a temp file beside ``path``, rename it into place, close the figure."""
    from .io import atomic_file

    try:
        with atomic_file(path, suffix=".png") as tmp:
            fig.savefig(tmp, format="png", **savefig_kwargs)
    finally:
        pyplot().close(fig)
    return Path(path)

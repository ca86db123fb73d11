"""`zhllama pipeline RECIPE.yaml`: the whole pipeline from one file.

``load_recipe`` parses and checks the recipe's structure; ``run_pipeline`` plans the stages,
checks every hand-off before any compute is spent, runs (or skips, when their inputs and settings
are unchanged) each stage in its own folder under the run directory, and writes the summary and
the loss curves.  The stages are registered in :data:`STAGES` (:mod:`.registry`), in pipeline
order.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..checks import check_output_path
from ..io import write_json_atomic, write_text_atomic
from .checks import check_plan
from .load import load_recipe, load_shipped_recipe, parse_recipe
from .manifest import read_manifest
from .recipe import Recipe
from .registry import STAGES, StageSpec, plan
from .runner import Outcome, run_stages, stage_dir
from .summary import PLOT_PNG, build_summary, plot_bits_per_char, plot_loss_curves

SUMMARY_MD = "summary.md"
LOSS_CURVES_PNG = "loss_curves.png"


@dataclass
class RunResult:
    recipe: Recipe
    outcomes: list[Outcome]
    summary: str
    loss_png: Path | None

    @property
    def ran(self) -> list[str]:
        return [o.name for o in self.outcomes if o.action != "cached"]

    def metrics(self, stage: str) -> dict:
        return next((o.manifest.get("metrics", {}) for o in self.outcomes if o.name == stage), {})


def prepare(recipe: Recipe, where: str = "recipe"):
    """The plan, after every check that needs no compute."""
    check_output_path(recipe.run_path, "folder", f"{where}: run_dir")
    stages = plan(recipe)
    check_plan(recipe, stages, where)
    return stages


def run_pipeline(recipe: Recipe, only: str | None = None, start: str | None = None, where: str = "recipe",
                 echo: Callable[[str], None] = print) -> RunResult:
    stages = prepare(recipe, where)
    outcomes = run_stages(recipe, stages, only=only, start=start, echo=echo)
    manifests = {s.name: m for s in stages if (m := read_manifest(stage_dir(recipe, s.name))) and m.get("status") == "complete"}
    summary = build_summary(recipe.name, manifests)
    run = recipe.run_path
    png = run / LOSS_CURVES_PNG
    if any(o.action != "cached" for o in outcomes) or not png.exists():
        png = plot_loss_curves(manifests, png)
    if any(o.action != "cached" for o in outcomes) or not (run / PLOT_PNG).exists():
        plot_bits_per_char(manifests, run / PLOT_PNG)
    write_text_atomic(run / SUMMARY_MD, summary + "\n")
    write_json_atomic(run / "summary.json", {k: v.get("metrics", {}) for k, v in manifests.items()})
    return RunResult(recipe, outcomes, summary, png if png and png.exists() else None)


__all__ = ["STAGES", "StageSpec", "Recipe", "RunResult", "load_recipe", "load_shipped_recipe", "parse_recipe", "plan",
           "prepare", "run_pipeline"]

"""Running a recipe's stages in order, with caching, resumption and ``--from`` / ``--only``."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Union

from ..config import to_dict
from ..errors import ZhllamaError
from .manifest import HashCache, describe_input, digest, package_versions, read_manifest, write_manifest
from .recipe import Recipe

# a stage's inputs by role: a path, a list of paths (train_files) or labelled paths (the models eval
# scores); each one is checksummed into the stage's key and recorded in its manifest
Inputs = dict[str, Union[str, list[str], dict[str, str]]]


def input_items(inputs: Inputs) -> list[tuple[str, str]]:
    """Every input path with its name, as the plan and errors show it: role, role[i] or role[label]."""
    out = []
    for role, value in inputs.items():
        if isinstance(value, list):
            out += [(f"{role}[{i}]", v) for i, v in enumerate(value)]
        elif isinstance(value, dict):
            out += [(f"{role}[{k}]", v) for k, v in value.items()]
        else:
            out.append((role, value))
    return out


@dataclass
class StageRun:
    """What a stage runner gets: its folder, its resolved inputs, its typed settings (a dataclass the
    stage's plan made: a ``TrainPlan``, a trainer's schema, ``ResizeSettings``...), whether to resume."""

    recipe: Recipe
    name: str
    dir: Path
    inputs: Inputs
    settings: Any
    resume: bool = False

    @property
    def out(self) -> Path:
        return self.dir / "out"

    @property
    def work(self) -> Path:
        return self.dir / "work"


@dataclass
class Stage:
    """One step of the plan. ``run`` returns the stage's metrics (JSON-able); ``settings`` are typed
    (what :func:`zhllama.config.to_dict` writes to the manifest and hashes into the key)."""

    name: str
    inputs: Inputs
    settings: Any
    run: Callable[[StageRun], dict]
    resumable: bool = False


def stage_dir(recipe: Recipe, name: str) -> Path:
    return recipe.run_path / name


def stage_out(recipe: Recipe, name: str) -> Path:
    return stage_dir(recipe, name) / "out"


@dataclass
class Outcome:
    name: str
    action: str  # "ran", "resumed", "cached"
    manifest: dict


def select(names: list[str], only: str | None, start: str | None) -> tuple[set[str], set[str]]:
    """(stages to consider, stages to run even if up to date)."""
    for flag, value in (("--only", only), ("--from", start)):
        if value is not None and value not in names:
            raise ZhllamaError(f"{flag} {value}: not a stage of this recipe", f"its stages are: {', '.join(names)}")
    if only and start:
        raise ZhllamaError("give --only or --from, not both", "--only runs one stage; --from runs a stage and the ones after it")
    if only:
        return {only}, {only}
    if start:
        chosen = set(names[names.index(start):])
        return chosen, chosen
    return set(names), set()


def run_stages(recipe: Recipe, stages: list[Stage], only: str | None = None, start: str | None = None,
               echo: Callable[[str], None] = print) -> list[Outcome]:
    """Run (or skip) each stage; upstream stages outside the selection must already be up to date."""
    names = [s.name for s in stages]
    chosen, forced = select(names, only, start)
    last = max((names.index(n) for n in chosen), default=-1)
    recipe.run_path.mkdir(parents=True, exist_ok=True)
    hashes = HashCache(recipe.run_path / ".hashes.json")
    produced: dict[str, str] = {}
    outcomes = []
    try:
        for i, st in enumerate(stages):
            if i > last:
                break
            key, described = stage_key(st, hashes, produced)
            d = stage_dir(recipe, st.name)
            manifest = read_manifest(d)
            fresh = is_up_to_date(manifest, key, d / "out")
            if st.name not in chosen:
                if not fresh:
                    raise ZhllamaError(f"stage '{st.name}' has not run, or its inputs or settings changed since",
                                       f"run it first: zhllama pipeline RECIPE --from {st.name}")
            elif fresh and st.name not in forced:
                echo(f"[{i + 1}/{len(stages)}] {st.name}: up to date, skipped")
                outcomes.append(Outcome(st.name, "cached", manifest))
            else:
                manifest, action = execute(recipe, st, key, described, manifest, hashes, i, len(stages), echo)
                outcomes.append(Outcome(st.name, action, manifest))
            produced[str(d / "out")] = manifest["output"]["sha256"]
    finally:
        hashes.save()
    return outcomes


def stage_key(st: Stage, hashes: HashCache, produced: dict[str, str]) -> tuple[str, dict]:
    described = {role: describe_input(value, hashes, produced) for role, value in st.inputs.items()}
    return digest({"stage": st.name, "settings": to_dict(st.settings), "inputs": described}), described


def is_up_to_date(manifest: dict | None, key: str, out: Path) -> bool:
    return bool(manifest and manifest.get("status") == "complete" and manifest.get("key") == key and out.exists())


def execute(recipe: Recipe, st: Stage, key: str, described: dict, manifest: dict | None, hashes: HashCache,
            i: int, n: int, echo) -> tuple[dict, str]:
    d = stage_dir(recipe, st.name)
    resume = bool(st.resumable and manifest and manifest.get("status") == "running" and manifest.get("key") == key)
    if not resume and d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True, exist_ok=True)
    echo(f"[{i + 1}/{n}] {st.name}: {'resuming' if resume else 'running'}")
    common = {"stage": st.name, "key": key, "settings": to_dict(st.settings), "inputs": described,
              "versions": package_versions()}
    write_manifest(d, status="running", **common)
    t0, c0 = time.perf_counter(), time.process_time()
    metrics = st.run(StageRun(recipe, st.name, d, st.inputs, st.settings, resume)) or {}
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    out = d / "out"
    if not out.exists():
        raise ZhllamaError(f"stage '{st.name}' finished without writing {out}", "this is a bug in the stage runner")
    files = hashes.tree(out) if out.is_dir() else {out.name: hashes.file(out)}
    size = sum(p.stat().st_size for p in (out.rglob("*") if out.is_dir() else [out]) if p.is_file())
    manifest = write_manifest(d, status="complete", **common, metrics=metrics, time_s=round(elapsed, 2),
                              cpu_s=round(cpu, 2),
                              output={"path": str(out), "size_bytes": size, "sha256": digest(files), "files": files})
    echo(f"[{i + 1}/{n}] {st.name}: done in {elapsed:.1f} s")
    return manifest, "resumed" if resume else "ran"

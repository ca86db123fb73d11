"""The built wheel works on its own: installed into a fresh venv, `zhllama demo --print-recipe` and
`zhllama pipeline --list-recipes` run outside the repository, and the package data (recipes, DeepSpeed
configs) is inside the wheel."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SRC_PKG = REPO / "src" / "zhllama"


def _run(cmd: list, cwd: Path, env: dict | None = None) -> str:
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def _build_wheel(tmp: Path) -> Path:
    """Build from a copy of the sources, so the build leaves no build/ or egg-info in the checkout."""
    copy = tmp / "source"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    shutil.copytree(REPO / "src", copy / "src", ignore=ignore)
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (REPO / name).exists():
            shutil.copy2(REPO / name, copy / name)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", ".", "-w", tmp / "dist"],
         cwd=copy)
    (wheel,) = (tmp / "dist").glob("zhllama-*.whl")
    return wheel


def test_wheel_installs_in_a_fresh_venv_and_prints_the_demo_recipe(tmp_path):
    wheel = _build_wheel(tmp_path)
    names = set(zipfile.ZipFile(wheel).namelist())
    recipes = SRC_PKG / "recipes"
    shipped = {f"zhllama/{p.relative_to(SRC_PKG).as_posix()}" for p in recipes.rglob("*.yaml")}
    assert len(shipped) >= 8 and shipped <= names, f"recipes missing from the wheel: {sorted(shipped - names)}"
    assert {"zhllama/py.typed", "zhllama/train/deepspeed/ds_zero3.json"} <= names

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--system-site-packages", venv], cwd=tmp_path)
    py = venv / "bin" / "python"
    _run([py, "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel], cwd=tmp_path)

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    where = _run([py, "-c", "import zhllama; print(zhllama.__file__)"], cwd=outside, env=env)
    assert Path(where.strip()).is_relative_to(venv), f"imported zhllama from {where}, not from the wheel"
    printed = _run([venv / "bin" / "zhllama", "demo", "--print-recipe"], cwd=outside, env=env)
    assert printed == (recipes / "demo.yaml").read_text(encoding="utf-8")
    assert "name: demo" in printed
    listed = _run([venv / "bin" / "zhllama", "pipeline", "--list-recipes"], cwd=outside, env=env)
    for p in recipes.rglob("*.yaml"):
        assert f"  {p.stem} " in listed, f"{p.stem} missing from --list-recipes"
    assert str(venv) in listed  # the files are found inside the installed package

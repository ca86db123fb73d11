"""An installed wheel carries the recipes: build it, install it into a new virtual environment and
run the shipped recipes from there (not from this source tree)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from zhllama.pipeline.demo import DEMO_RECIPE
from zhllama.pipeline.shipped import recipe_names

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The ``zhllama`` script of a venv with the built wheel installed (dependencies from this environment)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"  # a copy, so that the build leaves nothing in the source tree
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "src", src / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    run = lambda *cmd: subprocess.run(cmd, check=True, capture_output=True, text=True)  # noqa: E731
    run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp / "dist"), str(src))
    venv = tmp / "venv"
    run(sys.executable, "-m", "venv", "--system-site-packages", str(venv))
    run(str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps", *map(str, (tmp / "dist").glob("*.whl")))
    return venv / "bin" / "zhllama"


def zhllama(script: Path, *args: str, cwd: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([str(script), *args], cwd=cwd, env=env, capture_output=True, text=True, check=True)
    return done.stdout


@pytest.mark.slow
def test_the_installed_wheel_runs_the_shipped_recipes(installed, tmp_path):
    where = zhllama(installed.parent / "python", "-c", "import zhllama; print(zhllama.__file__)", cwd=tmp_path)
    assert str(installed.parents[1]) in where  # the venv's copy, not this source tree
    assert zhllama(installed, "demo", "--print-recipe", cwd=tmp_path) == DEMO_RECIPE
    listing = zhllama(installed, "pipeline", "--list-recipes", cwd=tmp_path)
    assert all(f"  {name}  " in listing for name in recipe_names())
    assert "  chinese-llama-7b-pt-lora  " in listing  # a training config (recipes/train/)

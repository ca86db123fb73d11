"""The built wheel works on its own, with exactly its core dependencies.

The wheel is installed into a venv that sees no other site-packages (not the system's, not the
suite's), holding only the distributions that the wheel's core requirements pull in, linked from
the interpreter that runs the suite (so it works system-wide, in a venv and in CI, with no network).
There, outside the repository: `zhllama demo --print-recipe`, `pipeline --list-recipes` and
`pipeline demo --check` run; every stage of the default recipe imports what it needs; and every
third-party module that zhllama imports anywhere (in functions too) imports, except the optional
engines that need an extra.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parent.parent
SRC_PKG = REPO / "src" / "zhllama"
# Imported only behind an option that names its install line (--quantize, webui, --engine vllm, GGUF K-quants,
# LongBench scoring in eval report).
OPTIONAL_ENGINES = {"bitsandbytes", "gradio", "llama_cpp", "vllm", "jieba", "rouge"}


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


def core_requirements(wheel: Path) -> list[str]:
    """The wheel's Requires-Dist lines that no extra guards."""
    with zipfile.ZipFile(wheel) as z:
        (name,) = [n for n in z.namelist() if n.endswith(".dist-info/METADATA")]
        meta = Parser().parsestr(z.read(name).decode("utf-8"))
    return [r for r in meta.get_all("Requires-Dist") or [] if "extra ==" not in r]


def dependency_closure(requirements: list[str]) -> dict[str, metadata.Distribution]:
    """Every distribution the requirements pull in, as installed for the interpreter running the suite."""
    found: dict[str, metadata.Distribution] = {}
    todo = [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        if req.marker and not req.marker.evaluate({"extra": ""}):
            continue
        name = canonicalize_name(req.name)
        if name in found:
            continue
        try:
            found[name] = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            pytest.fail(f"{req} is a core dependency but is not installed for {sys.executable}")
        todo += [Requirement(r) for r in found[name].requires or []]
    return found


def link_distributions(dists: dict[str, metadata.Distribution], site: Path) -> None:
    """Symlink each distribution's top-level files (packages, modules, .libs, dist-info) into ``site``.

    A namespace folder shared by two distributions (``google/`` of protobuf) is linked whole, once.
    """
    for dist in dists.values():
        root = Path(dist.locate_file(""))
        for top in sorted({Path(f).parts[0] for f in dist.files or [] if Path(f).parts[0] not in ("..", "__pycache__")}):
            if not (site / top).exists() and (root / top).exists():
                (site / top).symlink_to(root / top)


def third_party_imports(package: Path) -> set[str]:
    """Top-level names of every absolute import in the package's sources, module level or in functions."""
    names = set()
    for f in package.rglob("*.py"):
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n != "zhllama"}


@pytest.fixture(scope="module")
def core_venv(tmp_path_factory):
    """(venv, wheel): the wheel installed in a venv that holds exactly its core dependency closure."""
    tmp = tmp_path_factory.mktemp("packaging")
    wheel = _build_wheel(tmp)
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", venv], cwd=tmp)  # no --system-site-packages
    py = venv / "bin" / "python"
    site = Path(_run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp).strip())
    link_distributions(dependency_closure(core_requirements(wheel)), site)
    _run([py, "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel], cwd=tmp)
    return venv, wheel


@pytest.fixture
def outside(tmp_path):
    """A folder outside the repository, and an environment without the suite's paths."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    return tmp_path, env


def test_the_wheel_carries_the_recipes_and_configs(core_venv):
    _, wheel = core_venv
    names = set(zipfile.ZipFile(wheel).namelist())
    recipes = SRC_PKG / "recipes"
    shipped = {f"zhllama/{p.relative_to(SRC_PKG).as_posix()}" for p in recipes.rglob("*.yaml")}
    assert len(shipped) >= 8 and shipped <= names, f"recipes missing from the wheel: {sorted(shipped - names)}"
    assert {"zhllama/py.typed", "zhllama/train/deepspeed/ds_zero3.json"} <= names
    assert any(r.startswith("trl") for r in core_requirements(wheel)), "the demo's dpo stage needs TRL as a core dependency"


def test_the_venv_sees_only_the_core_dependencies(core_venv, outside):
    venv, _ = core_venv
    cwd, env = outside
    where = _run([venv / "bin" / "python", "-c", "import zhllama, torch; print(zhllama.__file__); print(torch.__file__)"],
                 cwd=cwd, env=env).split()
    assert Path(where[0]).is_relative_to(venv), f"imported zhllama from {where[0]}, not from the wheel"
    assert Path(where[1]).is_relative_to(venv), f"torch from {where[1]}, not through the venv"
    proc = subprocess.run([venv / "bin" / "python", "-c", "import pytest"], cwd=cwd, env=env, capture_output=True, text=True)
    assert proc.returncode != 0 and "No module named 'pytest'" in proc.stderr  # not a core dependency: not visible


def test_the_installed_command_prints_and_lists_the_shipped_recipes(core_venv, outside):
    venv, _ = core_venv
    cwd, env = outside
    recipes = SRC_PKG / "recipes"
    printed = _run([venv / "bin" / "zhllama", "demo", "--print-recipe"], cwd=cwd, env=env)
    assert printed == (recipes / "demo.yaml").read_text(encoding="utf-8")
    listed = _run([venv / "bin" / "zhllama", "pipeline", "--list-recipes"], cwd=cwd, env=env)
    for p in recipes.rglob("*.yaml"):
        assert f"  {p.stem} " in listed, f"{p.stem} missing from --list-recipes"
    assert str(venv) in listed  # the files are found inside the installed package


def test_every_stage_of_the_default_recipe_imports_what_it_needs(core_venv, outside):
    """`zhllama pipeline demo --check` (which checks each stage's packages), then each stage's
    run function and the packages it imports lazily, imported for real."""
    venv, _ = core_venv
    cwd, env = outside
    checked = _run([venv / "bin" / "zhllama", "pipeline", "demo", "--check", "--run-dir", cwd / "run"], cwd=cwd, env=env)
    assert "demo: OK" in checked
    script = (
        "import importlib, inspect\n"
        "from zhllama.pipeline import STAGES, load_recipe\n"
        "for name in load_recipe('demo').enabled():\n"
        "    spec = STAGES[name]\n"
        "    for module, _ in spec.requires:\n"
        "        importlib.import_module(module)\n"
        "    run = getattr(spec.run, 'func', spec.run)\n"
        "    importlib.import_module(inspect.getmodule(run).__name__)\n"
        "    print(name, [m for m, _ in spec.requires])\n")
    ran = _run([venv / "bin" / "python", "-c", script], cwd=cwd, env=env)
    assert "dpo ['trl']" in ran and ran.splitlines()[0].startswith("base")


def test_every_third_party_import_is_a_core_dependency_or_an_optional_engine(core_venv, outside):
    venv, _ = core_venv
    cwd, env = outside
    site = Path(_run([venv / "bin" / "python", "-c", "import zhllama; print(zhllama.__file__)"], cwd=cwd, env=env).strip())
    names = third_party_imports(site.parent)
    assert {"torch", "transformers", "trl", "peft", "sentencepiece"} <= names  # the scan sees imports inside functions
    needed = sorted(names - OPTIONAL_ENGINES)
    script = "import importlib, sys\nfor n in sys.argv[1:]:\n    importlib.import_module(n)\n"
    _run([venv / "bin" / "python", "-c", script, *needed], cwd=cwd, env=env)
    for engine in sorted(OPTIONAL_ENGINES & names):
        code = f"import importlib.util, sys; sys.exit(importlib.util.find_spec('{engine}') is not None)"
        assert subprocess.run([venv / "bin" / "python", "-c", code], cwd=cwd, env=env).returncode == 0, \
            f"{engine} is in the core venv: it is not optional"

"""The package's floors (docs/CONTRIBUTING.md, "Layers"): no module imports from a higher floor, and no
two sub-packages (or foundation modules) import each other, nor two modules of one sub-package, not
even through imports inside functions.

Every ``import`` and ``from ... import`` of every module under ``src/zhllama`` counts, wherever it sits
(module level, inside functions, under ``if TYPE_CHECKING``); relative imports are resolved.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

import zhllama

# the floors, lowest first; a module may import from its own floor or below
FLOORS = {
    "templates": 0,  # foundation sub-packages: the chat formats (formats.py) and their encoding (encode.py),
    "config": 0,  # and the typed schemas (schema.py) with their command-line options (cli_args.py)
    "tokenizer": 1,
    "data": 2,
    "model": 3,
    "train": 4,
    "align": 5,  # align trains on top of train (TrainConfig, checkpoints, data files)
    "export": 6,  # beside infer, which exports a folder for --engine llamacpp (export never imports infer)
    "infer": 6,
    "serve": 7, "eval": 7,
    "pipeline": 8,
    "cli": 9, "__main__": 9,  # zhllama/cli.py and python -m zhllama
}
FOUNDATION = 0  # zhllama/*.py: errors, io, config, templates, meta, checks, logs, plots, text, ...


@dataclass(frozen=True)
class Import:
    importer: str  # module name
    imported: str
    where: str  # file:line
    in_function: bool


def _module_name(path: Path, src: Path) -> str:
    parts = list(path.relative_to(src.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def collect_imports(src: Path) -> tuple[set[str], list[Import]]:
    """The package's modules and every import between them, each at its file:line."""
    files = {_module_name(p, src): p for p in sorted(src.rglob("*.py"))}
    root = src.name
    found = []
    for name, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        in_function = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
                       for n in ast.walk(f)}
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = ".".join(package[:len(package) - node.level + 1] + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                # `from pkg import module` imports the module; `from module import name` the module
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names]
            else:
                continue
            for target in dict.fromkeys(targets):
                if target != root and not target.startswith(root + "."):
                    continue
                while target not in files and "." in target:  # `import zhllama.x.y` of a name, not a module
                    target = target.rpartition(".")[0]
                if target != name:
                    found.append(Import(name, target, f"{path.relative_to(src.parent.parent)}:{node.lineno}",
                                        id(node) in in_function))
    return set(files), found


def unit(module: str) -> str:
    """A sub-package (``zhllama.infer`` for ``zhllama.infer.engine``), or a module of the package's own folder."""
    return ".".join(module.split(".")[:2])


def floor(module: str) -> int:
    parts = module.split(".")
    if len(parts) == 1:
        return FOUNDATION  # the package's __init__
    if parts[1] in FLOORS:
        return FLOORS[parts[1]]
    if len(parts) == 2:
        return FOUNDATION
    raise AssertionError(f"{module}: the sub-package {parts[1]} has no floor; add it to FLOORS and to "
                         "docs/CONTRIBUTING.md's layers")


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan), each sorted."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def layer_violations(src: Path) -> list[str]:
    """Upward imports, cycles between sub-packages/foundation modules (any import), and cycles between
    the modules of one sub-package (through module-level imports, or any import); one line each,
    naming file:line and the imported module."""
    modules, imports = collect_imports(src)
    problems = [f"{i.where}: {i.importer} (floor {floor(i.importer)}) imports {i.imported} (floor {floor(i.imported)})"
                f"{' inside a function' if i.in_function else ''}: a lower floor must not import a higher one"
                for i in imports if floor(i.imported) > floor(i.importer)]
    units: dict[str, set[str]] = {}
    for i in imports:
        if unit(i.importer) != unit(i.imported):
            units.setdefault(unit(i.importer), set()).add(unit(i.imported))
    for cycle in _cycles(units):
        sites = [f"{i.where}: {i.importer} imports {i.imported}" for i in imports
                 if unit(i.importer) in cycle and unit(i.imported) in cycle and unit(i.importer) != unit(i.imported)]
        problems.append(f"import cycle between {', '.join(cycle)}: " + "; ".join(sites))
    top, inside = {}, {}
    for i in imports:
        if not i.in_function:
            top.setdefault(i.importer, set()).add(i.imported)
        if unit(i.importer) == unit(i.imported):
            inside.setdefault(i.importer, set()).add(i.imported)
    module_level = _cycles(top)
    for cycle in module_level:
        sites = [f"{i.where}: {i.importer} imports {i.imported}" for i in imports
                 if not i.in_function and i.importer in cycle and i.imported in cycle]
        problems.append(f"module-level import cycle between {', '.join(cycle)}: " + "; ".join(sites))
    for cycle in _cycles(inside):  # closed by an import inside a function: the layering it hides is not real either
        if cycle not in module_level:
            sites = [f"{i.where}: {i.importer} imports {i.imported}{' inside a function' if i.in_function else ''}"
                     for i in imports if i.importer in cycle and i.imported in cycle]
            problems.append(f"import cycle inside {unit(cycle[0])} between {', '.join(cycle)}: " + "; ".join(sites))
    return problems


SRC = Path(zhllama.__file__).parent


def test_no_upward_imports_and_no_cycles_between_packages():
    problems = layer_violations(SRC)
    assert not problems, "\n".join(problems)


def test_every_sub_package_has_a_floor():
    packages = {p.parent.name for p in SRC.glob("*/__init__.py")}
    assert packages <= set(FLOORS), sorted(packages - set(FLOORS))


def test_the_checker_sees_imports_inside_functions_and_relative_ones():
    modules, imports = collect_imports(SRC)
    assert {"zhllama.errors", "zhllama.tokenizer.hf", "zhllama.model.load", "zhllama.cli"} <= modules
    edges = {(i.importer, i.imported, i.in_function) for i in imports}
    assert ("zhllama.model.load", "zhllama.tokenizer.load", False) in edges  # from ..tokenizer.load import ...
    assert ("zhllama.train.merge", "zhllama.model.load", True) in edges  # from ..model import load as L, in a function
    assert ("zhllama.tokenizer.exact", "zhllama.tokenizer.spm", False) in edges  # from . import spm as S


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    src = tmp_path / "src" / "zhllama"
    for name, text in files.items():
        path = src / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return src


GOOD = {
    "__init__.py": "",
    "errors.py": "",
    "checks.py": "from .errors import X\n",
    "tokenizer/__init__.py": "",
    "tokenizer/hf.py": "from ..checks import Y\n",
    "model/__init__.py": "",
    "model/load.py": "from ..tokenizer.hf import Z\n\ndef f():\n    from ..tokenizer import hf\n",
    "infer/__init__.py": "",
    "infer/engine.py": "import zhllama.model.load\nfrom zhllama.errors import X\n",
    "cli.py": "def main():\n    from .infer.engine import E\n",
}


def test_a_clean_tree_passes(tmp_path):
    assert layer_violations(_tree(tmp_path, GOOD)) == []


def test_an_upward_import_inside_a_function_fails_with_its_file_and_line(tmp_path):
    src = _tree(tmp_path, {**GOOD, "tokenizer/hf.py": "from ..checks import Y\n\n\ndef g():\n"
                                                      "    from ..infer.engine import resolve\n"})
    problems = layer_violations(src)
    assert len(problems) == 2, problems  # the upward import, and the cycle tokenizer -> infer -> model -> tokenizer
    assert problems[0].startswith("src/zhllama/tokenizer/hf.py:5: zhllama.tokenizer.hf (floor 1) imports "
                                  "zhllama.infer.engine (floor 6) inside a function")
    assert problems[1].startswith("import cycle between zhllama.infer, zhllama.model, zhllama.tokenizer")


def test_an_absolute_upward_import_fails(tmp_path):
    src = _tree(tmp_path, {**GOOD, "checks.py": "from .errors import X\nimport zhllama.cli\n"})
    problems = layer_violations(src)
    assert any(p.startswith("src/zhllama/checks.py:2: zhllama.checks (floor 0) imports zhllama.cli (floor 9)")
               for p in problems), problems


def test_a_cycle_between_foundation_modules_fails(tmp_path):
    src = _tree(tmp_path, {**GOOD, "errors.py": "def check():\n    from .checks import check_output_path\n"})
    assert layer_violations(src) == [
        "import cycle between zhllama.checks, zhllama.errors: src/zhllama/checks.py:1: zhllama.checks imports "
        "zhllama.errors; src/zhllama/errors.py:2: zhllama.errors imports zhllama.checks"]


def test_a_cycle_between_packages_on_one_floor_fails(tmp_path):
    src = _tree(tmp_path, {**GOOD, "eval/__init__.py": "", "serve/__init__.py": "",
                           "eval/cli.py": "def f():\n    from ..serve.results import usage\n",
                           "serve/results.py": "def g():\n    from ..eval.ppl import windows\n",
                           "eval/ppl.py": ""})
    problems = layer_violations(src)
    assert len(problems) == 1 and problems[0].startswith("import cycle between zhllama.eval, zhllama.serve:"), problems


def test_a_module_level_cycle_inside_a_package_fails(tmp_path):
    src = _tree(tmp_path, {**GOOD, "infer/engine.py": "from .batch import B\n", "infer/batch.py": "from .engine import E\n"})
    assert layer_violations(src) == [
        "module-level import cycle between zhllama.infer.batch, zhllama.infer.engine: src/zhllama/infer/batch.py:1: "
        "zhllama.infer.batch imports zhllama.infer.engine; src/zhllama/infer/engine.py:1: zhllama.infer.engine imports "
        "zhllama.infer.batch"]


def test_a_sub_package_without_a_floor_is_named(tmp_path):
    src = _tree(tmp_path, {**GOOD, "newstage/__init__.py": "", "newstage/run.py": "from ..errors import X\n"})
    with pytest.raises(AssertionError, match="zhllama.newstage.run: the sub-package newstage has no floor"):
        layer_violations(src)


def test_a_cycle_inside_a_package_through_an_import_in_a_function_fails(tmp_path):
    """The pipeline's seven modules once formed such a cycle (recipe -> registry -> stages -> ... -> recipe)."""
    src = _tree(tmp_path, {**GOOD, "pipeline/__init__.py": "", "pipeline/recipe.py": "def f():\n    from .registry import S\n",
                           "pipeline/registry.py": "from .recipe import Recipe\n"})
    assert layer_violations(src) == [
        "import cycle inside zhllama.pipeline between zhllama.pipeline.recipe, zhllama.pipeline.registry: "
        "src/zhllama/pipeline/recipe.py:2: zhllama.pipeline.recipe imports zhllama.pipeline.registry inside a function; "
        "src/zhllama/pipeline/registry.py:1: zhllama.pipeline.registry imports zhllama.pipeline.recipe"]

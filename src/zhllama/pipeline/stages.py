"""The stages' plan functions (``Planner.plan_*`` methods, registered with their run functions in
:data:`zhllama.pipeline.registry.STAGES`, which makes the plan of a recipe) and run functions
(``run_*``), each a small adapter onto the stage's own Python API
(tokenizer.train/merge, model.resize, train.train/merge_adapters, eval, infer.engine).  Settings
that decide a stage's output go into its settings; files and folders it reads go into its inputs
(checksummed by the runner)."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..config import INHERIT, build
from ..errors import ZhllamaError
from ..model.init import InitConfig, ModelShape
from ..model.resize import ResizeConfig
from ..train.config import MergeSettings, TrainConfig
from .align_stages import TUNED_LABEL
from .evaluate import EvalPlan, evaluate_models
from .recipe import (BaseSection, EvalSection, MergeSection, Recipe, ResizeSection, SftSection, TokenizerSection,
                     TrainOverrides, TrainSection)
from .runner import Inputs, StageRun, stage_out
from .training import TrainPlan, move_into, train_step, training_metrics
from . import sources

Plan = tuple[Inputs, Any]  # a stage's inputs (paths, checksummed) and its typed settings


@dataclass
class BasePlan:
    """The base stage's settings: the tokenizer's size, the model's shape and seed, its pre-training."""

    vocab_size: int
    shape: ModelShape
    seed: int
    train: TrainConfig


@dataclass(kw_only=True)
class MergePlan(MergeSettings):
    """The merge stage's settings: ``merge:`` and the recipe's template (recorded in the merged model)."""

    template: str


class Planner:
    """Walks the enabled stages in order, tracking which model and tokenizer each one hands on."""

    def __init__(self, recipe: Recipe):
        self.r = recipe
        self.model = recipe.resolve(recipe.base_model, hub_ok=True) if recipe.base_model else None
        self.base_tokenizer = recipe.resolve(recipe.base_tokenizer, hub_ok=True) if recipe.base_tokenizer else self.model
        self.tokenizer: str | None = None  # an extended tokenizer the current model does not carry yet
        self.evaluated: dict[str, str] = {}  # label -> model folder, for the eval stage
        self.sft_base: str | None = None
        self.sft_adapter: str | None = None
        self.reward_model: str | None = None  # the rm stage's output, for ppo
        self.base_model = self.model  # the model before any Chinese training (the ablation starts here too)
        self.pt_plan: tuple[Inputs, TrainPlan] | None = None
        self.pt_tokenizer: str | None = None  # the tokenizer the pt stage trains with
        self.ablation_model: str | None = None
        self.prepared = None  # the prepare stage's folder, tokenizer and files (a .prepare_stage.PreparedData)

    def path(self, value: str) -> str:
        """A recipe path, with ``builtin:`` sources written into the run folder."""
        if value.startswith("builtin:"):
            return str(sources.materialize(value, self.r.run_path / "data"))
        return self.r.resolve(value)

    def paths(self, values: list[str]) -> list[str]:
        return [self.path(v) for v in values]

    def recipe_template(self, section: Any, where: str) -> str:
        """The recipe's template, which a training section may repeat but not change."""
        if section.template is not INHERIT and section.template != self.r.template:
            raise ZhllamaError(f"{where}.template is '{section.template}' but the recipe's template is '{self.r.template}'",
                               "the model is served and evaluated with the recipe's top-level template; set it there only")
        return self.r.template

    def train_files(self, section: Any, where: str) -> list[str]:
        """A training section's data files, resolved (an input of the stage)."""
        if section.train_files is INHERIT or not section.train_files:
            raise ZhllamaError(f"{where}: no 'train_files'", "list the training data files")
        return self.paths(section.train_files)

    # --- one plan function per stage (registered in .registry): (inputs, settings) ----------
    def plan_base(self, b: BaseSection) -> Plan:
        settings = BasePlan(vocab_size=b.vocab_size, shape=build(ModelShape, b), seed=self.r.seed,
                            train=build(TrainConfig, b.train, full=True))
        self.model = self.base_tokenizer = self.base_model = str(stage_out(self.r, "base"))
        self.evaluated["English base"] = self.model
        inputs: Inputs = {"corpus": self.paths(b.corpus)}
        if b.tokenizer:
            inputs["tokenizer"] = self.path(b.tokenizer)
        return inputs, settings

    def plan_tokenizer(self, t: TokenizerSection) -> Plan:
        inputs: Inputs = {"base_tokenizer": self.base_tokenizer}
        if t.path:
            inputs["tokenizer"] = self.path(t.path)
        elif t.corpus:
            inputs["corpus"] = self.paths(t.corpus)
        else:
            raise ZhllamaError("tokenizer: give 'corpus' (Chinese text to train on) or 'path' (a ready tokenizer)",
                               "add one of them to the tokenizer: section")
        if self.eval_text():
            inputs["measure_text"] = self.paths(self.eval_text())
        self.tokenizer = str(stage_out(self.r, "tokenizer"))
        return inputs, replace(t, corpus=[], path=None)  # the files are inputs

    def plan_resize(self, section: ResizeSection) -> Plan:
        inputs = {"model": self.model, "base_tokenizer": self.base_tokenizer, "tokenizer": self.tokenizer}
        self.model, self.tokenizer = str(stage_out(self.r, "resize")), None
        self.evaluated["resized"] = self.model
        return inputs, section

    def plan_pt(self, section: TrainSection) -> Plan:
        inputs = {"model": self.model, **self.pt_data(section), **self.take_tokenizer()}
        settings = TrainPlan(build(TrainConfig, section, train_files=[], data=None))
        self.pt_tokenizer = inputs.get("tokenizer") or self.model
        self.pt_plan = (inputs, settings)
        self.model = str(stage_out(self.r, "pt") / "model")
        self.evaluated["pre-trained"] = self.model
        return inputs, settings

    def pt_data(self, section: TrainSection) -> Inputs:
        """What pt reads: the prepare stage's folder, a ready prepared folder (``pt.data``) or text files."""
        if self.prepared is not None:
            if section.train_files or section.data:
                raise ZhllamaError("pt: 'train_files' or 'data' given, but the prepare: section makes pt's data",
                                   "list the corpus files under prepare.train_files only")
            return {"data": self.prepared.folder}
        if section.data:
            if section.train_files:
                raise ZhllamaError("pt: both 'data' and 'train_files' are set",
                                   "give one: data (a folder made by `zhllama data prepare`) or train_files")
            return {"data": self.path(section.data)}
        return {"train_files": self.train_files(section, "pt")}

    def plan_sft(self, section: SftSection) -> Plan:
        inputs = {"model": self.model, "train_files": self.train_files(section, "sft"), **self.take_tokenizer()}
        first = build(TrainConfig, section, template=self.recipe_template(section, "sft"), train_files=[])
        then = None
        if section.then is not None:
            then = self.second_phase(first, section.then)
            inputs["then_train_files"] = self.train_files(section.then, "sft.then")
        self.sft_base = self.model
        out = stage_out(self.r, "sft")
        self.sft_adapter = None if first.full else str(out / "adapter")
        self.model = str(out / "model") if first.full else None
        if self.model:
            self.evaluated["instruction-tuned"] = self.model
        return inputs, TrainPlan(first, then)

    def second_phase(self, first: TrainConfig, then: TrainOverrides) -> TrainConfig:
        """``sft.then``: a second phase of training from the first phase's model, with the first
        phase's settings except for the keys it gives (``train_files`` it must give)."""
        where = "sft.then"
        if not first.full or then.full is False:
            raise ZhllamaError(f"{where}: a second phase needs full-parameter training (full: true in sft)",
                               "with LoRA, merge the adapter and start another pipeline from the merged model")
        self.train_files(then, where)
        self.recipe_template(then, where)
        return build(TrainConfig, first, then, train_files=[])

    def plan_merge(self, section: MergeSection) -> Plan:
        if not self.sft_adapter:
            raise ZhllamaError("merge: there is no LoRA adapter to merge", "merge follows an sft stage trained with LoRA (full: false)")
        inputs = {"model": self.sft_base, "lora": self.sft_adapter}
        self.model = str(stage_out(self.r, "merge"))
        self.evaluated["instruction-tuned"] = self.model
        return inputs, build(MergePlan, section, template=self.r.template)

    def plan_eval(self, e: EvalSection) -> Plan:
        if self.model is None:
            raise ZhllamaError("eval: the sft stage's LoRA adapter is not merged", "add a merge stage before eval")
        models = dict(self.evaluated)
        if self.model not in models.values():
            models["final"] = self.model
        inputs: Inputs = {"models": models}
        if e.text:
            inputs["text"] = self.paths(e.text)
        if e.tasks:
            inputs["tasks"] = self.path(e.tasks)
        tuned = self.sft_base is not None
        if tuned:
            inputs["sft_train"] = self.paths(self.r.sft.train_files)
        if e.pairs:
            inputs["pairs"] = self.path(e.pairs)
        settings = EvalPlan(max_chars=e.max_chars, max_examples=e.max_examples, question=e.question,
                            template=self.r.template if tuned else "none", final=self.model, before_sft=self.sft_base,
                            scored=self.scored_models() if tuned else {"after_sft": self.model}, showcase=e.showcase,
                            prompt=e.prompt, speed_chars=e.speed_chars)
        if self.ablation_model:  # the two pre-training arms, timed side by side
            settings.arms = {"pt": self.evaluated["pre-trained"], "ablation": self.ablation_model}
        return inputs, settings

    def scored_models(self) -> dict[str, str]:
        """The models whose held-out task accuracy is measured: before and after SFT, after DPO / PPO."""
        scored = {"before_sft": self.sft_base, "after_sft": self.evaluated.get("instruction-tuned", self.model)}
        scored.update({f"after_{stage}": self.evaluated[label] for stage, label in TUNED_LABEL.items() if label in self.evaluated})
        return scored

    def plan_model_reader(self, section) -> Plan:
        """The default plan: the stage reads the current model, its settings are its section, it hands on nothing."""
        if self.model is None:
            raise ZhllamaError("there is no model to read: the sft stage's LoRA adapter is not merged",
                               "add a merge stage after sft")
        return {"model": self.model}, section

    def take_tokenizer(self) -> dict[str, str]:
        """The extended tokenizer as a training input when the model does not carry it (training resizes)."""
        tok, self.tokenizer = self.tokenizer, None
        return {"tokenizer": tok} if tok else {}

    def eval_text(self) -> list[str]:
        return self.r.eval.text if self.r.eval and self.r.eval.text else []


# --- runners: each one calls the owning stage's Python API ---------------------------------
def run_base(ctx: StageRun) -> dict:
    """English tokenizer (or the given one) -> random model of the family -> full pre-training on English text."""
    from ..model.init import init_model
    from ..tokenizer.train import TokenizerTrainConfig as SpConfig, train_tokenizer

    s: BasePlan = ctx.settings
    corpus = ctx.inputs["corpus"]
    tok_dir, init_dir = ctx.work / "tokenizer", ctx.work / "init"
    if "tokenizer" in ctx.inputs:
        tok_dir = Path(ctx.inputs["tokenizer"])
    elif not (tok_dir / "tokenizer.json").is_file():
        train_tokenizer(SpConfig(corpus=corpus, out=str(tok_dir), vocab_size=s.vocab_size, model_type="bpe",
                                 character_coverage=1.0, overwrite=True), progress=False)
    if not (init_dir / "config.json").is_file():
        init_model(build(InitConfig, s.shape, tokenizer=str(tok_dir), out=str(init_dir), seed=s.seed, overwrite=True))
    result = train_step(ctx, "pt", s.train, str(init_dir), corpus, None)
    move_into(Path(result["model_dir"]), ctx.out)
    return training_metrics(ctx.work / "train")


def run_tokenizer(ctx: StageRun) -> dict:
    from ..io import atomic_dir
    from ..tokenizer.backend import merge_tokenizers
    from ..tokenizer.train import TokenizerTrainConfig as SpConfig, train_tokenizer

    s: TokenizerSection = ctx.settings
    base = ctx.inputs["base_tokenizer"]
    if "tokenizer" in ctx.inputs:
        with atomic_dir(ctx.out, overwrite=True) as tmp:
            write_tokenizer_folder(ctx.inputs["tokenizer"], tmp)
    else:
        sp_dir = ctx.work / "chinese_sp"
        train_tokenizer(build(SpConfig, s.options, corpus=ctx.inputs["corpus"], out=str(sp_dir), vocab_size=s.vocab_size,
                              model_type=s.model_type, overwrite=True), progress=False)
        merge_tokenizers(base, [sp_dir / "tokenizer.model"], ctx.out, mode=s.mode, pad_token=s.pad_token, overwrite=True)
    metrics = {"vocab_before": vocab_size(base), "vocab_after": vocab_size(ctx.out)}
    text = ctx.inputs.get("measure_text", [])
    if text:
        cpt = chinese_cpt({"before": base, "after": str(ctx.out)}, text)
        metrics.update(chars_per_token_before=cpt["before"], chars_per_token_after=cpt["after"])
    return metrics


def write_tokenizer_folder(src: str | Path, dst: Path) -> None:
    """Copy a tokenizer folder; a bare SentencePiece model (file or folder) gets its HF files written."""
    from ..model.families import resolve_template
    from ..tokenizer.chat import set_chat_template
    from ..tokenizer.hf import copy_tokenizer_files, write_hf_tokenizer

    p = Path(src)
    if p.is_file() or not (p / "tokenizer.json").is_file():
        write_hf_tokenizer(p, dst)
    else:
        copy_tokenizer_files(p, dst)
        set_chat_template(dst, resolve_template(dst))


def run_resize(ctx: StageRun) -> dict:
    from ..model.resize import resize_model

    return resize_model(build(ResizeConfig, ctx.settings, model=ctx.inputs["model"], tokenizer=ctx.inputs["tokenizer"],
                              base_tokenizer=ctx.inputs["base_tokenizer"], out=str(ctx.out), overwrite=True))


def run_merge(ctx: StageRun) -> dict:
    from ..train import merge_adapters

    s: MergePlan = ctx.settings
    merge_adapters(ctx.inputs["model"], [ctx.inputs["lora"]], str(ctx.out), dtype=s.dtype, max_shard_size=s.max_shard_size,
                   overwrite=True, template=s.template)
    return {"parameters": parameter_count(ctx.out)}


def run_eval(ctx: StageRun) -> dict:
    return evaluate_models(ctx)


def run_export(ctx: StageRun) -> dict:
    from ..export.gguf import export_gguf

    outtype = ctx.settings.outtype
    ctx.out.mkdir(parents=True, exist_ok=True)
    path = export_gguf(ctx.inputs["model"], ctx.out / f"model-{outtype}.gguf", outtype=outtype, overwrite=True,
                       progress=False)
    return {"gguf": path.name, "gguf_bytes": path.stat().st_size}


# --- helpers -------------------------------------------------------------------------------
def vocab_size(tokenizer_dir: str | Path) -> int:
    from ..tokenizer.load import load_tokenizer

    return len(load_tokenizer(tokenizer_dir))


def chinese_cpt(tokenizers: dict[str, str], text: list[str]) -> dict[str, float]:
    from .metrics import chinese_chars_per_token

    return chinese_chars_per_token(tokenizers, text)


def parameter_count(model_dir: str | Path) -> int:
    from safetensors import safe_open

    total = 0
    for f in Path(model_dir).glob("*.safetensors"):
        with safe_open(str(f), "pt") as st:
            for k in st.keys():
                total += math.prod(st.get_slice(k).get_shape())
    return total

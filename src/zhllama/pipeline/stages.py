"""The plan of a recipe: one :class:`Stage` per enabled stage, built from the stage's entry in
:data:`zhllama.pipeline.registry.STAGES`: its plan function (a ``Planner.plan_*`` method) and its
run function (a ``run_*`` function here), a small adapter onto the stage's own Python API
(tokenizer.train/merge, model.resize, train.train/merge_adapters, eval, infer.engine).  Settings
that decide a stage's output go into its settings; files and folders it reads go into its inputs
(checksummed by the runner)."""

from __future__ import annotations

import math
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..errors import ZhllamaError
from .recipe import BaseSection, EvalSection, ExportSection, MergeSection, Recipe, ResizeSection, TokenizerSection
from .align_stages import TUNED_LABEL
from .runner import Stage, StageRun, stage_out
from . import sources

RESERVED_TRAIN_KEYS = ("model", "output_dir", "tokenizer", "resume", "overwrite")
Plan = tuple[dict[str, str], dict[str, Any]]  # a stage's inputs (paths, checksummed) and settings


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
        self.pt_plan: Plan | None = None
        self.pt_tokenizer: str | None = None  # the tokenizer the pt stage trains with
        self.ablation_model: str | None = None

    def path(self, value: str) -> str:
        """A recipe path, with ``builtin:`` sources written into the run folder."""
        if value.startswith("builtin:"):
            return str(sources.materialize(value, self.r.run_path / "data"))
        return self.r.resolve(value)

    def files(self, values: list[str], role: str) -> dict[str, str]:
        return {f"{role}[{i}]": self.path(v) for i, v in enumerate(values)}

    def train_settings(self, section: dict, where: str, template: str | None, schema=None) -> tuple[dict, list[str]]:
        """Validate a pt/sft section against ``TrainConfig`` (or ``schema``); return (settings, train files)."""
        from ..config import from_dict
        from ..train.config import TrainConfig

        for key in section:
            if key in RESERVED_TRAIN_KEYS:
                raise ZhllamaError(f"{where}: '{key}' is set by the pipeline", "remove it from the recipe")
        if template and section.get("template", template) != template:
            raise ZhllamaError(f"{where}.template is '{section['template']}' but the recipe's template is '{template}'",
                               "the model is served and evaluated with the recipe's top-level template; set it there only")
        cfg = from_dict(schema or TrainConfig, dict(section), where)
        if not cfg.train_files:
            raise ZhllamaError(f"{where}: no 'train_files'", "list the training data files")
        settings = {k: v for k, v in asdict(cfg).items() if k not in RESERVED_TRAIN_KEYS and k != "train_files"}
        if template:
            settings["template"] = template
        return settings, list(cfg.train_files)

    def stage(self, name: str) -> Stage:
        """The stage ``name`` as planned at this point of the pipeline (its section, or the schema's defaults)."""
        from .registry import STAGES

        spec = STAGES[name]
        section = getattr(self.r, name)
        inputs, settings = spec.plan(self, section if section is not None else spec.section())
        return Stage(name, inputs, settings, spec.run, resumable=spec.resumable)

    # --- one plan function per stage (registered in .registry): (inputs, settings) ----------
    def plan_base(self, b: BaseSection) -> Plan:
        settings, _ = self.train_settings({**b.train, "train_files": ["-"], "full": True}, "base.train", None)
        shape = {k: v for k, v in asdict(b).items() if k not in ("corpus", "train", "tokenizer")}
        self.model = self.base_tokenizer = self.base_model = str(stage_out(self.r, "base"))
        self.evaluated["English base"] = self.model
        inputs = self.files(b.corpus, "corpus")
        if b.tokenizer:
            inputs["tokenizer"] = self.path(b.tokenizer)
        return inputs, {"shape": shape, "train": settings, "seed": self.r.seed}

    def plan_tokenizer(self, t: TokenizerSection) -> Plan:
        inputs = {"base_tokenizer": self.base_tokenizer}
        if t.path:
            inputs["tokenizer"] = self.path(t.path)
        else:
            inputs.update(self.files(t.corpus, "corpus"))
            if not t.corpus:
                raise ZhllamaError("tokenizer: give 'corpus' (Chinese text to train on) or 'path' (a ready tokenizer)",
                                   "add one of them to the tokenizer: section")
        inputs.update(self.files(self.eval_text(), "measure_text"))
        self.tokenizer = str(stage_out(self.r, "tokenizer"))
        settings = {k: v for k, v in asdict(t).items() if k not in ("corpus", "path")}
        return inputs, settings

    def plan_resize(self, section: ResizeSection) -> Plan:
        inputs = {"model": self.model, "base_tokenizer": self.base_tokenizer, "tokenizer": self.tokenizer}
        self.model, self.tokenizer = str(stage_out(self.r, "resize")), None
        self.evaluated["resized"] = self.model
        return inputs, asdict(section)

    def plan_pt(self, section: dict) -> Plan:
        settings, files = self.train_settings(section, "pt", None)
        self.pt_tokenizer = self.tokenizer or self.model
        inputs = {"model": self.model, **self.files(files, "train_files"), **self.take_tokenizer()}
        self.pt_plan = (inputs, settings)
        self.model = str(stage_out(self.r, "pt") / "model")
        self.evaluated["pre-trained"] = self.model
        return inputs, settings

    def plan_sft(self, section: dict) -> Plan:
        section = dict(section)
        then = section.pop("then", None)
        settings, files = self.train_settings(section, "sft", self.r.template)
        inputs = {"model": self.model, **self.files(files, "train_files"), **self.take_tokenizer()}
        if then is not None:
            settings["then"], then_files = self.second_phase(section, settings, then)
            inputs.update(self.files(then_files, "then_train_files"))
        self.sft_base = self.model
        out = stage_out(self.r, "sft")
        self.sft_adapter = None if settings["full"] else str(out / "adapter")
        self.model = str(out / "model") if settings["full"] else None
        if self.model:
            self.evaluated["instruction-tuned"] = self.model
        return inputs, settings

    def second_phase(self, section: dict, first: dict, then) -> tuple[dict, list[str]]:
        """``sft.then``: a second phase of training from the first phase's model, with the first
        phase's ``section`` except for the keys it gives (``train_files`` it must give)."""
        where = "sft.then"
        if not isinstance(then, dict):
            raise ZhllamaError(f"{where}: expected a mapping of training settings",
                               "e.g. then: {train_files: [more.json], max_steps: 80, learning_rate: 5.0e-4}")
        if not first["full"] or not then.get("full", True):
            raise ZhllamaError(f"{where}: a second phase needs full-parameter training (full: true in sft)",
                               "with LoRA, merge the adapter and start another pipeline from the merged model")
        if "train_files" not in then:
            raise ZhllamaError(f"{where}: no 'train_files'", "list the second phase's training data files")
        return self.train_settings({**section, **then}, where, self.r.template)

    def plan_merge(self, section: MergeSection) -> Plan:
        if not self.sft_adapter:
            raise ZhllamaError("merge: there is no LoRA adapter to merge", "merge follows an sft stage trained with LoRA (full: false)")
        inputs = {"model": self.sft_base, "lora": self.sft_adapter}
        self.model = str(stage_out(self.r, "merge"))
        self.evaluated["instruction-tuned"] = self.model
        return inputs, {**asdict(section), "template": self.r.template}

    def plan_eval(self, e: EvalSection) -> Plan:
        if self.model is None:
            raise ZhllamaError("eval: the sft stage's LoRA adapter is not merged", "add a merge stage before eval")
        inputs = {f"model:{label}": path for label, path in self.evaluated.items()}
        if self.model not in self.evaluated.values():
            inputs["model:final"] = self.model
        inputs.update(self.files(e.text, "text"))
        if e.tasks:
            inputs["tasks"] = self.path(e.tasks)
        tuned = self.sft_base is not None
        if tuned:
            inputs.update(self.files(self.r.sft["train_files"], "sft_train"))
        if e.pairs:
            inputs["pairs"] = self.path(e.pairs)
        settings = {"max_chars": e.max_chars, "max_examples": e.max_examples, "question": e.question,
                    "template": self.r.template if tuned else "none", "final": self.model,
                    "before_sft": self.sft_base, "scored": self.scored_models() if tuned else {"after_sft": self.model},
                    "showcase": e.showcase, "prompt": e.prompt, "speed_chars": e.speed_chars}
        if self.ablation_model:  # the two pre-training arms, timed side by side
            settings["arms"] = {"pt": self.evaluated["pre-trained"], "ablation": self.ablation_model}
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
        return {"model": self.model}, asdict(section)

    def take_tokenizer(self) -> dict[str, str]:
        """The extended tokenizer as a training input when the model does not carry it (training resizes)."""
        tok, self.tokenizer = self.tokenizer, None
        return {"tokenizer": tok} if tok else {}

    def eval_text(self) -> list[str]:
        return self.r.eval.text if self.r.eval and self.r.eval.text else []


def plan(recipe: Recipe) -> list[Stage]:
    planner = Planner(recipe)
    return [planner.stage(name) for name in recipe.enabled()]


# --- runners: each one calls the owning stage's Python API ---------------------------------
def run_base(ctx: StageRun) -> dict:
    """English tokenizer (or the given one) -> random model of the family -> full pre-training on English text."""
    from dataclasses import fields

    from ..model.init import InitConfig, ModelShape, init_model
    from ..tokenizer.train import TokenizerTrainConfig as SpConfig, train_tokenizer

    shape, corpus = ctx.settings["shape"], [v for k, v in ctx.inputs.items() if k.startswith("corpus")]
    tok_dir, init_dir = ctx.work / "tokenizer", ctx.work / "init"
    if "tokenizer" in ctx.inputs:
        tok_dir = Path(ctx.inputs["tokenizer"])
    elif not (tok_dir / "tokenizer.json").is_file():
        train_tokenizer(SpConfig(corpus=corpus, out=str(tok_dir), vocab_size=shape["vocab_size"], model_type="bpe",
                                 character_coverage=1.0, overwrite=True), progress=False)
    if not (init_dir / "config.json").is_file():
        init_model(InitConfig(tokenizer=str(tok_dir), out=str(init_dir), seed=ctx.settings["seed"], overwrite=True,
                              **{f.name: shape[f.name] for f in fields(ModelShape)}))
    result = train_step(ctx, "pt", str(init_dir), corpus, ctx.settings["train"], None)
    move_into(Path(result["model_dir"]), ctx.out)
    return training_metrics(ctx.work / "train")


def run_tokenizer(ctx: StageRun) -> dict:
    from ..io import atomic_dir
    from ..tokenizer.merge import merge_tokenizers
    from ..tokenizer.train import TokenizerTrainConfig as SpConfig, train_tokenizer

    s, base = ctx.settings, ctx.inputs["base_tokenizer"]
    if "tokenizer" in ctx.inputs:
        with atomic_dir(ctx.out, overwrite=True) as tmp:
            write_tokenizer_folder(ctx.inputs["tokenizer"], tmp)
    else:
        corpus = [v for k, v in ctx.inputs.items() if k.startswith("corpus")]
        sp_dir = ctx.work / "chinese_sp"
        train_tokenizer(SpConfig(corpus=corpus, out=str(sp_dir), vocab_size=s["vocab_size"], model_type=s["model_type"],
                                 overwrite=True, **s["options"]), progress=False)
        merge_tokenizers(base, [sp_dir / "tokenizer.model"], ctx.out, mode=s["mode"], pad_token=s["pad_token"],
                         overwrite=True)
    metrics = {"vocab_before": vocab_size(base), "vocab_after": vocab_size(ctx.out)}
    text = [v for k, v in ctx.inputs.items() if k.startswith("measure_text")]
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
    from ..model.resize import ResizeConfig, resize_model

    return resize_model(ResizeConfig(model=ctx.inputs["model"], tokenizer=ctx.inputs["tokenizer"],
                                     base_tokenizer=ctx.inputs["base_tokenizer"], out=str(ctx.out), overwrite=True,
                                     init=ctx.settings["init"], pad_to_multiple_of=ctx.settings["pad_to_multiple_of"]))


def run_train(ctx: StageRun, stage: str) -> dict:
    """pt or sft; a LoRA run also writes the merged model that the next stage starts from."""
    from ..train import merge_adapters

    files = [v for k, v in ctx.inputs.items() if k.startswith("train_files")]
    settings = dict(ctx.settings)
    then = settings.pop("then", None)
    result = train_step(ctx, stage, ctx.inputs["model"], files, settings, ctx.inputs.get("tokenizer"))
    if then:  # the second phase starts from the first one's final model (full-parameter only)
        then_files = [v for k, v in ctx.inputs.items() if k.startswith("then_train_files")]
        result = train_step(ctx, stage, result["model_dir"], then_files, then, None, folder="then")
    final = Path(result["model_dir"])
    if ctx.settings["full"]:
        move_into(final, ctx.out / "model")
    else:
        move_into(final, ctx.out / "adapter")
        if stage == "pt":
            merge_adapters(ctx.inputs["model"], [str(ctx.out / "adapter")], str(ctx.out / "model"), overwrite=True)
    metrics = training_metrics(ctx.work / "train")
    if then:
        metrics["then"] = training_metrics(ctx.work / "then")
    return metrics


def train_step(ctx: StageRun, stage: str, model: str, files: list[str], settings: dict, tokenizer: str | None,
               folder: str = "train") -> dict:
    from ..train import TrainConfig, train

    from ..train.checkpoints import last_complete_checkpoint

    out = ctx.work / folder
    resume = bool(ctx.resume and out.is_dir() and last_complete_checkpoint(out))  # else start over
    fields = {k: v for k, v in settings.items() if k != "train_files"}
    cfg = TrainConfig(**fields, model=model, tokenizer=tokenizer, train_files=files, output_dir=str(out),
                      resume=resume, overwrite=not resume)
    return train(cfg, stage)


def run_merge(ctx: StageRun) -> dict:
    from ..train import merge_adapters

    merge_adapters(ctx.inputs["model"], [ctx.inputs["lora"]], str(ctx.out), dtype=ctx.settings["dtype"],
                   max_shard_size=ctx.settings["max_shard_size"], overwrite=True, template=ctx.settings["template"])
    return {"parameters": parameter_count(ctx.out)}


def run_eval(ctx: StageRun) -> dict:
    from .evaluate import evaluate_models

    return evaluate_models(ctx)


def run_export(ctx: StageRun) -> dict:
    from ..export.gguf import export_gguf

    ctx.out.mkdir(parents=True, exist_ok=True)
    path = export_gguf(ctx.inputs["model"], ctx.out / f"model-{ctx.settings['outtype']}.gguf",
                       outtype=ctx.settings["outtype"], overwrite=True, progress=False)
    return {"gguf": path.name, "gguf_bytes": path.stat().st_size}


# --- helpers -------------------------------------------------------------------------------
def move_into(src: Path, dst: Path) -> None:
    """Move a finished folder into place (replacing an older one)."""
    if dst.exists():
        shutil.rmtree(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(src), str(dst))


def training_metrics(train_dir: Path) -> dict:
    """The numbers the summary shows, from the training stage's report."""
    from ..train.report import read_run_outputs

    data = read_run_outputs(train_dir)
    if data is None:
        return {}
    m, curve = data.get("metrics", {}), data.get("loss_curve", {})
    keep = ("train_loss", "eval_loss", "train_runtime", "tokens_seen", "train_tokens_per_second")
    return {**{k: m[k] for k in keep if k in m}, "parameters": data.get("parameters"), "loss_curve": curve}


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

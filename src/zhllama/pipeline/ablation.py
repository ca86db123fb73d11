"""The ablation arm: what vocabulary extension buys, measured against not extending.

The ``ablation`` stage continues pre-training the *base* model with its *original* tokenizer
(Chinese falls back to UTF-8 bytes, as with LLaMA) on the pt stage's text, with the pt stage's
settings, for the same number of characters: the pt stage's step count is scaled by how many more
tokens the same text takes with the original tokenizer (the same fraction of the corpus is seen;
tokens per step stay the same).  Step-count settings (logging, evaluation, checkpoints, warm-up by
ratio) scale with it, so both arms are evaluated at the same characters seen.  Its section holds
training settings that differ from pt's (rarely needed; ``max_steps`` is the pipeline's).
"""

from __future__ import annotations

import math
from dataclasses import replace

from ..config import build
from ..errors import ZhllamaError
from ..train.config import TrainConfig
from .recipe import AblationSection
from .runner import Inputs, StageRun, stage_out
from .training import TrainPlan, run_train

ABLATION_LABEL = "no extension (ablation)"
SCALED_STEPS = ("logging_steps", "save_steps", "eval_steps")


def plan_ablation(planner, section: AblationSection) -> tuple[Inputs, TrainPlan]:
    """Inputs: the base model and tokenizer, the pt stage's text (the prepare stage's files when pt read its
    shards) and the tokenizer pt trained with; settings: the pt stage's, with the keys the section gives."""
    if planner.pt_plan is None:
        raise ZhllamaError("ablation: there is no pt stage to compare with", "add a pt: section before ablation")
    pt_inputs, pt_settings = planner.pt_plan
    if planner.pt_tokenizer == planner.base_tokenizer:
        raise ZhllamaError("ablation: the pt stage already trains with the base tokenizer (no tokenizer stage)",
                           "the ablation compares an extended vocabulary with the original one; add a tokenizer stage")
    settings = TrainPlan(build(TrainConfig, pt_settings.train, section))
    if planner.prepared is not None:  # pt read the prepare stage's shards: the ablation reads the same text files
        prep = planner.prepared.section
        settings.train = replace(settings.train, text_field=prep.text_field, skip_bad=prep.skip_bad)
        files = planner.prepared.files
    elif "train_files" in pt_inputs:
        files = pt_inputs["train_files"]
    else:
        raise ZhllamaError("ablation: pt reads a ready prepared folder (pt.data), whose text the ablation cannot "
                           "tokenize with the base tokenizer", "give pt's text as pt.train_files or a prepare: section")
    inputs: Inputs = {"model": planner.base_model, "extended_tokenizer": planner.pt_tokenizer, "train_files": files}
    if planner.base_tokenizer != planner.base_model:
        inputs["tokenizer"] = planner.base_tokenizer
    planner.evaluated[ABLATION_LABEL] = str(stage_out(planner.r, "ablation") / "model")
    planner.ablation_model = planner.evaluated[ABLATION_LABEL]
    return inputs, settings


def token_counts(tokenizer_dirs: dict[str, str], files: list[str]) -> tuple[int, dict[str, int]]:
    """(characters, {label: tokens}) of the training text, documents separated by one EOS as pt packs them."""
    from ..text import iter_documents
    from ..tokenizer.load import load_tokenizer

    docs = [d for f in files for d in iter_documents(f)]
    counts = {}
    for label, path in tokenizer_dirs.items():
        tok = load_tokenizer(path)
        counts[label] = sum(len(ids) + 1 for ids in tok(docs, add_special_tokens=False)["input_ids"])
    return sum(len(d) for d in docs), counts


def matched_settings(cfg: TrainConfig, ratio: float) -> TrainConfig:
    """pt's settings with every step count scaled by ``ratio`` (same characters, same evaluation points)."""
    steps = {key: max(1, round(getattr(cfg, key) * ratio)) for key in SCALED_STEPS if getattr(cfg, key)}
    return replace(cfg, max_steps=max(1, math.ceil(cfg.max_steps * ratio)), **steps)


def run_ablation(ctx: StageRun) -> dict:
    pt: TrainConfig = ctx.settings.train
    if pt.max_steps <= 0:
        raise ZhllamaError("ablation: the pt stage gives no max_steps to match", "set pt.max_steps")
    files = ctx.inputs["train_files"]
    base_tok = ctx.inputs.get("tokenizer", ctx.inputs["model"])
    chars, tokens = token_counts({"pt": ctx.inputs["extended_tokenizer"], "ablation": base_tok}, files)
    cfg = matched_settings(pt, tokens["ablation"] / tokens["pt"])
    metrics = run_train(replace(ctx, settings=TrainPlan(cfg)), stage="pt")
    per_step = cfg.batch_size * cfg.gradient_accumulation_steps * cfg.block_size
    arms = {}
    for arm, steps in (("pt", pt.max_steps), ("ablation", cfg.max_steps)):
        cpt = chars / tokens[arm]
        arms[arm] = {"steps": steps, "tokens_per_step": per_step, "chars_per_token": round(cpt, 4),
                     "characters_seen": round(steps * per_step * cpt)}
    return {**metrics, "arms": arms, "train_chars": chars}

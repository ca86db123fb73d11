"""The options of ``zhllama eval ppl | mc | compare``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..config import option
from ..model.config import LoadConfig, device_option, dtype_option
from ..infer.sampling import SamplingParams
from ..rope_scaling import RopeScaling
from .mc_benchmarks import MC_BENCHMARKS


@dataclass(kw_only=True)
class EvalModel(LoadConfig):
    """The model under evaluation: how it is loaded (:class:`~zhllama.model.config.LoadConfig`)."""

    model: str = option("model folder (Hugging Face format) or hub id; eval ppl also takes a .gguf file (needs "
                        "llama-cpp-python)")


@dataclass(kw_only=True)
class PplConfig:
    load: EvalModel
    text: str = option(".txt (one text), .jsonl/.json (one text per record), or .gz")
    text_field: str = option("field of a JSONL record holding the text", "text")
    context: int | None = option("window in tokens (default: the model's maximum)", None, low=2)
    stride: int | None = option("window step in tokens (default: context / 2)", None, low=1)
    rope_scaling: RopeScaling | None = option("score with RoPE scaling: linear:F, ntk:F (dynamic NTK) or yarn:F (the default "
                                      "--context grows F times)", None, metavar="KIND:FACTOR")
    out: str | None = option("also write the JSON result to this file", None)


@dataclass(kw_only=True)
class PasskeyConfig:
    load: EvalModel
    lengths: list[int] = option("prompt lengths in tokens", factory=lambda: [256, 512, 1024])
    depths: list[float] = option("where the key sits in the filler: 0 = start, 1 = end",
                                 factory=lambda: [0.0, 0.25, 0.5, 0.75, 1.0])
    trials: int = option("random keys per length and depth", 5, low=1)
    digits: int = option("digits of the key", 5, low=1, high=20)
    rope_scaling: RopeScaling | None = option("extend the context with RoPE scaling: linear:F, ntk:F (dynamic NTK) or yarn:F",
                                      None, metavar="KIND:FACTOR")
    seed: int = option("seed of the random keys", 0)
    batch_size: int = option("prompts decoded together", 8, low=1)
    out: str = option("results folder: passkey.json, passkey.md (table) and passkey.png (heat map)")


@dataclass(kw_only=True)
class McConfig:
    load: EvalModel
    task: str = option("benchmark", choices=tuple(MC_BENCHMARKS))
    data_dir: str = option("benchmark folder with dev/ and test/ (CMMLU) or dev/, val/, test/ (C-Eval)")
    split: str | None = option("split to evaluate (default: test for CMMLU, val for C-Eval)", None)
    shots: int = option("few-shot examples from the dev split (dropped from the end when the prompt is too long)", 0,
                        choices=range(0, 6), metavar="{0..5}", low=0)
    subjects: list[str] | None = option("subject keys (file names), default all", None)
    out: str = option("results folder (re-running with the same settings continues)")
    batch_size: int = option("prompts per forward pass / generation batch", 8, low=1)
    max_length: int | None = option("context limit in tokens (default: the model's)", None, low=2)
    template: str | None = option("chat template to wrap the prompt in (default: none in logit mode, which scores the "
                                  "protocol's raw prompt; with --generate the default rule: zhllama.json, else the "
                                  "model family's, else none)", None)
    generate: bool = option("generate a reply and extract the letter (chat models)", False)
    max_new_tokens: int = option("reply length limit with --generate", 32, low=1)
    overwrite: bool = option("discard predictions already in --out", False)
    protocol: Literal["ymcui", "ymcui-chat", "cmmlu", "ceval", "zhllama"] = option(
        "whose evaluator to reproduce exactly (prompt, tokens scored, logits processing): ymcui = "
        "Chinese-LLaMA-Alpaca-2's scripts (their published tables), ymcui-chat = the same with their chat prompt, "
        "cmmlu / ceval = the benchmarks' official LLaMA evaluators, zhllama = zhllama's earlier prompt (the one "
        "for --template and --generate)", "ymcui")


def _compare_sampling() -> SamplingParams:
    """The seeds' review settings: longer answers, cooler sampling, one seed for every model."""
    return SamplingParams(max_new_tokens=400, temperature=0.2, seed=42)


@dataclass(kw_only=True)
class CompareConfig:
    questions: str | None = option(".txt (one per line), .jsonl or .json with question, id, category", None)
    model: list[str] = option("DIR or path=DIR,label=NAME,lora=ADAPTER,template=NAME; repeat for each model",
                              factory=list, metavar="SPEC", repeat="append")
    judgements: str | None = option("pairwise judgements (JSONL) -> win rates and Elo", None)
    out: str = option("output folder")
    sampling: SamplingParams = option("how answers are sampled", factory=_compare_sampling)
    batch_size: int = option("questions decoded together", 8, low=1)
    elo_k: float = option("Elo K-factor (FastChat's 4)", 4.0, positive=True)
    elo_init: float = option("starting Elo rating", 1500.0)
    elo_rounds: int = option("bootstrap rounds (0: one pass in file order)", 1000, low=0)
    device: str = device_option()
    dtype: str = dtype_option()


@dataclass(kw_only=True)
class ReportConfig:
    base: str = option("the base model folder (where the adaptation started)")
    model: list[str] = option("an adapted model folder; repeat for several", factory=list, metavar="DIR",
                              repeat="append")
    out: str = option("report folder: report.md (table), report.json (every value, command, data sha256), "
                      "report.png (differences with standard errors)")
    zh_text: str | None = option("Chinese held-out text (.txt, .jsonl, .json) for bits per character", None)
    en_text: str | None = option("English held-out text for bits per character", None)
    text_limit: int | None = option("first N texts of each text file", None, low=1)
    context: int | None = option("window in tokens for bits/char and LongBench (default: the model's)", None, low=2)
    mc_task: Literal["cmmlu", "ceval"] | None = option("Chinese multiple choice benchmark (eval mc, ymcui protocol)",
                                                       None)
    mc_data: str | None = option("its folder (CMMLU or C-Eval layout)", None)
    mc_subjects: list[str] | None = option("its subject keys (default all)", None)
    mmlu_data: str | None = option("English multiple choice folder in MMLU's layout (test/{subject}_test.csv)", None)
    mmlu_limit: int | None = option("first N questions of each MMLU subject", None, low=1)
    shots: int = option("few-shot examples from dev/ for the multiple choice sets", 0, low=0, high=5)
    passkey_lengths: list[int] = option("passkey retrieval at these prompt lengths (tokens)", factory=list)
    passkey_trials: int = option("random keys per length", 10, low=1)
    longbench: list[str] = option("LongBench JSONL files of the Chinese subsets (dureader.jsonl, multifieldqa_zh.jsonl, "
                                  "vcsum.jsonl, lsht.jsonl, passage_retrieval_zh.jsonl)", factory=list, metavar="FILE")
    longbench_limit: int | None = option("first N samples of each LongBench file", None, low=1)
    batch_size: int = option("prompts per forward pass", 8, low=1)
    seed: int = option("seed of the passkeys", 0)
    device: str = device_option()
    dtype: str = dtype_option()

"""``zhllama eval ppl | mc | compare``; the options come from ``eval/config.py``."""

from __future__ import annotations

import argparse
import json
import sys

from ..config import add_dataclass_args, from_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate models: perplexity, C-Eval/CMMLU, side-by-side review",
                       description="Evaluate models: sliding-window perplexity (ppl), C-Eval/CMMLU multiple "
                                   "choice (mc), and side-by-side generation review with win rates and Elo (compare).")
    esub = p.add_subparsers(dest="eval_command", metavar="ACTION", required=True)
    _register_ppl(esub)
    _register_mc(esub)
    _register_compare(esub)
    _register_passkey(esub)
    _register_report(esub)
    from ..align.cli import register_reward_eval

    register_reward_eval(esub)  # docs/align.md


def _register_ppl(esub) -> None:
    from .config import PplConfig

    p = esub.add_parser("ppl", help="sliding-window perplexity, bits per character and per byte",
                        description="Perplexity of a text with a sliding window that scores every token once "
                                    "(windows of --context tokens every --stride tokens), plus bits per "
                                    "character and bits per UTF-8 byte, which compare models with different "
                                    "tokenizers. Prints JSON.")
    add_dataclass_args(p, PplConfig, overrides=False)
    p.set_defaults(func=_ppl)


def _ppl(args: argparse.Namespace) -> int:
    from ..errors import ZhllamaError
    from ..io import write_json_atomic
    from ..model.load import load_model
    from ..model.rope import apply_rope_scaling, parse_rope_scaling, scaled_context
    from .config import PplConfig
    from .ppl import check_window, perplexity, read_texts

    cfg = from_args(PplConfig, args)
    m = cfg.load
    check_window(cfg.context, cfg.stride)
    if cfg.rope_scaling:
        parse_rope_scaling(cfg.rope_scaling)
    texts = read_texts(cfg.text, cfg.text_field)
    if str(m.model).endswith(".gguf"):  # a zhllama export gguf file, run by llama.cpp
        from .llamacpp import gguf_perplexity

        if m.lora:
            raise ZhllamaError("--lora cannot be applied to a GGUF file", "merge the adapter, then export again")
        if cfg.rope_scaling:
            raise ZhllamaError("--rope-scaling is not applied to a GGUF file", "the GGUF file carries the scaling "
                               "the model was exported with")
        scores = gguf_perplexity(m.model, texts, cfg.context, cfg.stride, progress=sys.stderr.isatty())
    else:
        model, tokenizer = load_model(m.model, lora=m.lora, dtype=m.dtype, device=m.device, quantize=m.quantize,
                                      attn=m.attn)
        if cfg.rope_scaling:
            apply_rope_scaling(model, cfg.rope_scaling)
        context = scaled_context(model.config) if cfg.context is None else cfg.context
        stride = max(1, context // 2) if cfg.stride is None else cfg.stride
        scores = perplexity(model, tokenizer, texts, context, stride, progress=sys.stderr.isatty())
    result = {"model": str(m.model), "lora": m.lora, "text": str(cfg.text), **scores}
    if cfg.rope_scaling:
        result["rope_scaling"] = cfg.rope_scaling
    if cfg.out:
        write_json_atomic(cfg.out, result)
    print(json.dumps(result, ensure_ascii=False, indent=2))
    return 0


def _register_mc(esub) -> None:
    from .config import McConfig

    p = esub.add_parser("mc", help="C-Eval / CMMLU multiple-choice accuracy",
                        description="Multiple-choice accuracy on CMMLU or C-Eval in their public layouts, with "
                                    "the reference prompt (Chinese instruction naming the subject, few-shot dev "
                                    "examples, 答案：). The answer is the letter with the highest next-token "
                                    "logit, or with --generate the letter read from a chat model's reply. "
                                    "Writes OUT/predictions.jsonl (a re-run continues from it), results.json, "
                                    "results.md and, for C-Eval, submission.json.")
    add_dataclass_args(p, McConfig, overrides=False)
    p.set_defaults(func=_mc)


def _mc(args: argparse.Namespace) -> int:
    from .config import McConfig
    from .mc import McSettings, evaluate_mc
    from .mc_report import results_table

    cfg = from_args(McConfig, args)
    m = cfg.load
    split = cfg.split or ("test" if cfg.task == "cmmlu" else "val")
    settings = McSettings(task=cfg.task, split=split, shots=cfg.shots, model=str(m.model), lora=m.lora,
                          template=cfg.template, generate=cfg.generate, max_length=cfg.max_length,
                          max_new_tokens=cfg.max_new_tokens if cfg.generate else None)
    settings.protocol = cfg.protocol
    summary = evaluate_mc(settings, cfg.data_dir, cfg.out, cfg.subjects, cfg.batch_size, cfg.overwrite,
                          m.device, m.dtype, progress=True, quantize=m.quantize, attn=m.attn)
    print(results_table(summary), end="")
    print(f"wrote {cfg.out}/results.json")
    return 0


def _register_compare(esub) -> None:
    from .config import CompareConfig

    p = esub.add_parser("compare", help="side-by-side answers of several models; win rates and Elo",
                        description="Generate the answers of several models (each with its own chat template) to "
                                    "the same questions into OUT/answers.jsonl, a side-by-side OUT/report.md and "
                                    "OUT/report.html. With --judgements (JSONL: id, model_a, model_b, winner "
                                    "a|b|tie) also win rates with and without ties and Elo ratings (OUT/arena.md, "
                                    "OUT/arena.json); judgements alone need no models.")
    add_dataclass_args(p, CompareConfig, overrides=False)
    p.set_defaults(func=_compare)


def _compare(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..errors import ZhllamaError
    from ..io import write_json_atomic, write_text_atomic
    from . import compare, elo
    from .config import CompareConfig

    cfg = from_args(CompareConfig, args)
    if not cfg.model and not cfg.judgements:
        raise ZhllamaError("nothing to compare", "give --questions with two or more --model, and/or --judgements")
    if cfg.model and not cfg.questions:
        raise ZhllamaError("--model needs --questions", "give the questions file the models should answer")
    specs = [compare.parse_model_spec(m) for m in cfg.model]
    labels = [s.label for s in specs]
    if len(set(labels)) != len(labels):
        raise ZhllamaError(f"two models have the same label ({', '.join(labels)})", "add label=NAME to the --model specs")
    questions = compare.read_questions(cfg.questions) if cfg.questions else None
    battles = None
    if cfg.judgements:
        battles = elo.read_judgements(cfg.judgements, labels or None,
                                      {q["id"] for q in questions} if questions else None)
    out = Path(cfg.out)
    rows = elo.arena(battles, cfg.elo_k, cfg.elo_init, cfg.elo_rounds, cfg.sampling.seed) if battles else None
    if rows:
        write_json_atomic(out / "arena.json", rows)
        write_text_atomic(out / "arena.md", elo.arena_table(rows))
        print(elo.arena_table(rows), end="")
    if specs:
        answers = compare.generate_answers(specs, questions, cfg.sampling.validate(), cfg.batch_size, cfg.device,
                                           cfg.dtype)
        records = compare.answer_records(questions, answers)
        write_text_atomic(out / "answers.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
        write_text_atomic(out / "report.md", compare.report_markdown(records, labels, elo.arena_table(rows) if rows else None))
        write_text_atomic(out / "report.html", compare.report_html(records, labels, rows))
        print(f"wrote {out}/report.md, {out}/report.html and {out}/answers.jsonl")
    return 0


def _register_passkey(esub) -> None:
    from .config import PasskeyConfig

    p = esub.add_parser("passkey", help="passkey retrieval: accuracy by prompt length and depth",
                        description="Hide a random number at chosen depths of a Chinese filler text of chosen "
                                    "lengths and ask the model for it (greedy). Prints accuracy by length x depth "
                                    "and writes OUT/passkey.json, OUT/passkey.md and a heat map OUT/passkey.png: "
                                    "the standard check that a model uses its long context (e.g. after "
                                    "train --rope-scaling, or with --rope-scaling at inference).")
    add_dataclass_args(p, PasskeyConfig, overrides=False)
    p.set_defaults(func=_passkey)


def _passkey(args: argparse.Namespace) -> int:
    from .config import PasskeyConfig
    from .passkey import evaluate_passkey

    cfg = from_args(PasskeyConfig, args)
    result, table = evaluate_passkey(cfg)
    print(table, end="")
    print(f"mean accuracy {100 * result.mean():.1f}%; wrote {cfg.out}/passkey.json, passkey.md and passkey.png")
    return 0


def _register_report(esub) -> None:
    from .config import ReportConfig

    p = esub.add_parser("report", help="adaptation report: what a model gained and lost against its base",
                        description="Evaluate a base model and its adaptations on what you give: bits per character "
                                    "of Chinese and English text, C-Eval/CMMLU, an English MMLU-layout set, passkey "
                                    "retrieval by length and LongBench's Chinese subsets. Writes OUT/report.md (each "
                                    "difference against the base with its standard error), OUT/report.json and "
                                    "OUT/report.png.")
    add_dataclass_args(p, ReportConfig, overrides=False)
    p.set_defaults(func=_report)


def _report(args: argparse.Namespace) -> int:
    from .config import ReportConfig
    from .report import report_command, run_report

    cfg = from_args(ReportConfig, args)
    print(run_report(cfg, report_command(cfg)), end="")
    print(f"wrote {cfg.out}/report.md, report.json and report.png")
    return 0

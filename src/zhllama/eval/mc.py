"""``zhllama eval mc``: C-Eval / CMMLU multiple-choice accuracy, batched and resumable.

Two ways to get a model's answer:

* logit mode (default): one forward pass per prompt; the answer is the letter with the best
  next-token score, exactly as the reference evaluator named by ``--protocol`` computes it
  (:mod:`zhllama.eval.mc_protocols`; ``--protocol zhllama``: :mod:`zhllama.eval.mc_prompt`);
* ``--generate`` (chat models): the prompt is rendered with the model's chat template, the engine
  generates greedily, and the letter is read from the text (:mod:`zhllama.eval.extract`).

Every answered question is appended to ``OUT/predictions.jsonl`` as soon as its batch finishes;
a re-run with the same settings skips the questions already there, so an interrupted run
continues where it stopped.  ``OUT/run.json`` records the settings a results folder belongs to.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import ZhllamaError
from ..io import write_json_atomic, write_text_atomic
from .config import McConfig
from .mc_benchmarks import MC_BENCHMARKS
from .mc_data import LETTERS, Question, Subject
from .mc_prompt import PromptEncoder, fit_prompt, prompt_text
from .task import EvalTask

PREDICTIONS = "predictions.jsonl"
RUN_FILE = "run.json"


@dataclass
class McSettings:
    """What a results folder's predictions depend on (a re-run must match them to continue)."""

    task: str
    split: str
    shots: int
    model: str
    lora: str | None = None
    template: str | None = None
    generate: bool = False
    max_length: int | None = None
    max_new_tokens: int | None = None
    protocol: str = "ymcui"


@dataclass
class McItem:
    subject: Subject
    question: Question
    ids: list[int] = field(default_factory=list)
    shots: int = 0
    truncated: bool = False


class LogitScorer:
    """The letter the model finds likeliest next (:mod:`zhllama.eval.choice`); ``scores`` are log-probabilities."""

    def __init__(self, model, tokenizer, template: str | None, max_length: int):
        self.model = model
        self.encoder = PromptEncoder(tokenizer, template)
        self.letter_ids = self.encoder.letter_ids()
        self.max_length = max_length
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    def prepare(self, item: McItem, shots: int) -> None:
        item.ids, item.shots, item.truncated = fit_prompt(self.encoder, item.subject.name, item.subject.dev,
                                                          item.question, shots, self.max_length)

    def answer(self, items: list[McItem]) -> list[dict]:
        from .choice import best_choice, choice_scores

        letters = [[t] for t in self.letter_ids]
        scores = choice_scores(self.model, [it.ids for it in items], [letters] * len(items), self.pad_id)
        return [{"pred": LETTERS[best_choice(s)], "scores": [round(x, 4) for x in s]} for s in scores]


class GenerateScorer:
    """Greedy generation with the model's chat template; the letter is read from the text."""

    def __init__(self, engine, max_new_tokens: int):
        from ..infer.engine import SamplingParams

        self.engine = engine
        self.params = SamplingParams(max_new_tokens=max_new_tokens, temperature=0.0, top_p=1.0, top_k=0,
                                     repetition_penalty=1.0)
        self.budget = engine.context_length - max_new_tokens

    def prepare(self, item: McItem, shots: int) -> None:
        subject, q = item.subject, item.question
        for k in range(min(shots, len(subject.dev)), -1, -1):
            messages = [{"role": "user", "content": prompt_text(subject.name, subject.dev[:k], q)}]
            try:
                ids = self.engine.chat_prompt(messages, self.params.max_new_tokens)
            except ZhllamaError:
                continue
            if len(ids) <= self.budget:
                item.ids, item.shots = ids, k
                return
        raise ZhllamaError(f"{subject.key} question {q.qid}: the zero-shot prompt does not fit the context "
                           f"({self.engine.context_length} tokens) with {self.params.max_new_tokens} new tokens",
                           "lower --max-new-tokens or raise --max-length")

    def answer(self, items: list[McItem]) -> list[dict]:
        from .extract import extract_choice

        outs = self.engine.generate([it.ids for it in items], self.params)
        return [{"pred": extract_choice(c.text, it.question.options), "output": c.text} for it, c in zip(items, outs)]


def open_results(out: Path, settings: McSettings, overwrite: bool) -> dict[tuple[str, str], dict]:
    """Check ``out`` belongs to this run (or start it) and return the predictions already made."""
    from ..checks import check_output_path

    run_file, pred_file = out / RUN_FILE, out / PREDICTIONS
    check_output_path(out, "folder", "--out")
    if out.is_dir() and any(out.iterdir()) and not run_file.is_file() and not overwrite:
        raise ZhllamaError(f"--out {out} is a folder that holds no eval mc results ({RUN_FILE} missing)",
                           "choose a new or empty folder, or pass --overwrite to write there anyway")
    out.mkdir(parents=True, exist_ok=True)
    wanted = asdict(settings)
    if run_file.is_file() and not overwrite:
        try:
            existing = json.loads(run_file.read_text(encoding="utf-8"))
        except ValueError:
            raise ZhllamaError(f"{run_file} is not valid JSON", "delete the results folder or pass --overwrite") from None
        diff = [k for k in wanted if existing.get(k) != wanted[k]]
        if diff:
            k = diff[0]
            raise ZhllamaError(f"{out} holds results of another run ({k}: {existing.get(k)!r}, now {wanted[k]!r})",
                               "choose another --out, or pass --overwrite to start over")
    elif overwrite or not run_file.is_file():
        pred_file.unlink(missing_ok=True)
    write_json_atomic(run_file, wanted)
    return read_predictions(pred_file)


def read_predictions(path: Path) -> dict[tuple[str, str], dict]:
    """Predictions so far; a last line cut short by an interruption is dropped (and redone)."""
    done: dict[tuple[str, str], dict] = {}
    if not path.is_file():
        return done
    *lines, tail = path.read_text(encoding="utf-8").split("\n")
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            done[(rec["subject"], rec["id"])] = rec
        except (ValueError, KeyError, TypeError):
            raise ZhllamaError(f"{path}: line {lineno} is not a prediction record",
                               "delete the line (it will be redone) or pass --overwrite") from None
    if tail.strip():  # no newline after it: the write was interrupted
        write_text_atomic(path, "".join(line + "\n" for line in lines))
    return done


def append_predictions(path: Path, records: list[dict]) -> None:
    """Append whole lines and flush them to disk, so an interrupted run loses at most one batch.

    (An append-only JSONL log rather than an atomic rewrite: rewriting the whole file after each
    batch would make long runs quadratic.)
    """
    with path.open("a", encoding="utf-8") as f:
        f.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
        f.flush()
        os.fsync(f.fileno())


def pending_items(subjects: list[Subject], done: dict) -> list[McItem]:
    return [McItem(s, q) for s in subjects for q in s.questions if (s.key, q.qid) not in done]


def run_mc(subjects: list[Subject], scorer, shots: int, out: Path, done: dict, batch_size: int = 8,
           progress: bool = True) -> dict[tuple[str, str], dict]:
    """Answer every question not yet in ``done``; returns all predictions (old and new)."""
    from tqdm.auto import tqdm

    items = pending_items(subjects, done)
    for it in tqdm(items, desc="prompts", unit="q", disable=not progress or len(items) < 500):
        scorer.prepare(it, shots)
    items.sort(key=lambda it: len(it.ids))  # similar lengths together: less padding
    total = sum(len(s.questions) for s in subjects)
    bar = tqdm(total=total, initial=total - len(items), desc="questions", unit="q", disable=not progress)
    pred_file = out / PREDICTIONS
    for start in range(0, len(items), max(1, batch_size)):
        batch = items[start: start + batch_size]
        records = [_record(it, ans) for it, ans in zip(batch, scorer.answer(batch))]
        append_predictions(pred_file, records)
        done.update({(r["subject"], r["id"]): r for r in records})
        bar.update(len(batch))
    bar.close()
    return done


def _record(item: McItem, answer: dict) -> dict:
    gold = item.question.answer
    rec = {"subject": item.subject.key, "id": item.question.qid, "pred": answer["pred"], "answer": gold,
           "correct": None if gold is None else answer["pred"] == gold, "shots": item.shots}
    if item.truncated:
        rec["truncated"] = True
    rec.update({k: v for k, v in answer.items() if k != "pred"})
    return rec


def make_scorer(settings: McSettings, device: str = "auto", dtype: str = "auto", quantize: str | None = None,
                attn: str | None = None):
    """Load the model the way the mode needs it; fills in ``settings.max_length``."""
    if settings.generate:
        from ..infer.engine import Engine

        engine = Engine.load(settings.model, lora=settings.lora, template=settings.template, device=device, dtype=dtype,
                             context_length=settings.max_length, quantize=quantize, attn=attn)
        settings.max_length = engine.context_length
        settings.template = engine.template.name
        return GenerateScorer(engine, settings.max_new_tokens or 32)
    from ..model.load import load_model
    from .mc_protocols import CMMLU_MAX_LENGTH, ProtocolScorer, get_protocol

    model, tokenizer = load_model(settings.model, lora=settings.lora, dtype=dtype, device=device, quantize=quantize,
                                  attn=attn)
    protocol = get_protocol(settings.protocol)
    if protocol is not None and protocol.name == "cmmlu":
        settings.max_length = settings.max_length or CMMLU_MAX_LENGTH
    settings.max_length = settings.max_length or int(model.config.max_position_embeddings)
    settings.max_new_tokens = None
    if protocol is not None:
        return ProtocolScorer(model, tokenizer, protocol, settings.task, settings.max_length)
    return LogitScorer(model, tokenizer, settings.template, settings.max_length)


def evaluate_mc(settings: McSettings, data_dir: str | Path, out: str | Path, subjects: list[str] | None = None,
                batch_size: int = 8, overwrite: bool = False, device: str = "auto", dtype: str = "auto",
                progress: bool = True, scorer=None, quantize: str | None = None, attn: str | None = None) -> dict:
    """Run (or continue) an evaluation into ``out``; returns the summary written to results.json."""
    from .mc_data import load_task
    from .mc_protocols import check_protocol, with_cells_as_read
    from .mc_report import ceval_submission, summarize, write_reports

    check_protocol(settings.protocol, settings.task, settings.template, settings.generate)
    subs = load_task(settings.task, data_dir, settings.split, settings.shots, subjects)
    if settings.protocol != "zhllama":
        subs = with_cells_as_read(settings.task, data_dir, settings.split, subs)
    scorer = scorer or make_scorer(settings, device, dtype, quantize, attn)
    out = Path(out)
    done = open_results(out, settings, overwrite)
    done = run_mc(subs, scorer, settings.shots, out, done, batch_size, progress)
    summary = summarize(settings.task, subs, done)
    submission = ceval_submission(subs, done) if MC_BENCHMARKS[settings.task].writes_submission else None
    write_reports(out, settings.task, asdict(settings), summary, submission)
    return summary


def mc_command(cfg) -> int:
    """``zhllama eval mc``: evaluate ``cfg`` (a :class:`~zhllama.eval.config.McConfig`), print the table."""
    from .mc_report import results_table

    m = cfg.load
    split = cfg.split or MC_BENCHMARKS[cfg.task].splits[0]
    settings = McSettings(task=cfg.task, split=split, shots=cfg.shots, model=str(m.model), lora=m.lora,
                          template=cfg.template, generate=cfg.generate, max_length=cfg.max_length,
                          max_new_tokens=cfg.max_new_tokens if cfg.generate else None)
    settings.protocol = cfg.protocol
    summary = evaluate_mc(settings, cfg.data_dir, cfg.out, cfg.subjects, cfg.batch_size, cfg.overwrite,
                          m.device, m.dtype, progress=True, quantize=m.quantize, attn=m.attn)
    print(results_table(summary), end="")
    print(f"wrote {cfg.out}/results.json")
    return 0


TASK = EvalTask("mc", McConfig, mc_command, help="C-Eval / CMMLU multiple-choice accuracy",
                description="Multiple-choice accuracy on CMMLU or C-Eval in their public layouts, with the reference "
                            "prompt (Chinese instruction naming the subject, few-shot dev examples, 答案：). The answer "
                            "is the letter with the highest next-token logit, or with --generate the letter read from "
                            "a chat model's reply. Writes OUT/predictions.jsonl (a re-run continues from it), "
                            "results.json, results.md and, for C-Eval, submission.json.")

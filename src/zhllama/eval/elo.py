"""Pairwise judgements -> win rates and Elo ratings, as the Chinese-LLaMA-Alpaca-2 arena reports them.

A judgement file is JSONL, one battle per line::

    {"id": "q17", "model_a": "alpaca-2-7b", "model_b": "alpaca-plus-7b", "winner": "a"}

``winner`` is ``a``, ``b`` or ``tie``.  Per model we report wins, losses, ties, the win rate with
ties (wins / all battles) and without (wins / (wins + losses), the arena table's
"Win Rate (no tie)"), and an Elo rating.

Elo as FastChat's Chatbot Arena (which the seeds' arena imitates) computes it: online updates
``R_a += K * (S_a - E_a)`` with ``E_a = 1 / (1 + 10 ** ((R_b - R_a) / 400))``, a tie scoring 0.5,
every model starting at ``init``; because online Elo depends on the order of the battles, the
reported rating is the median over ``rounds`` bootstrap resamples of the battles (with
replacement, seeded).  ``rounds=0`` gives the single pass in file order.
"""

from __future__ import annotations

import json
import random
import statistics
from dataclasses import dataclass
from pathlib import Path

from ..errors import ZhllamaError, require_file

WINNERS = ("a", "b", "tie")


@dataclass(frozen=True)
class Battle:
    qid: str
    model_a: str
    model_b: str
    winner: str  # a | b | tie


def read_judgements(path: str | Path, models: list[str] | None = None, question_ids: set[str] | None = None) -> list[Battle]:
    """Battles from a JSONL file; ``models``/``question_ids``, when given, are the only ones allowed."""
    p = require_file(path, "judgement file")
    battles = []
    for lineno, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            battles.append(_battle(line, f"{p}: line {lineno}", models, question_ids))
    if not battles:
        raise ZhllamaError(f"{p}: no judgements", 'one JSON object per line: {"id", "model_a", "model_b", "winner"}')
    return battles


def _battle(line: str, where: str, models, question_ids) -> Battle:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        raise ZhllamaError(f"{where}: invalid JSON ({e.msg})", "one JSON object per line") from None
    if not isinstance(obj, dict):
        raise ZhllamaError(f"{where}: expected a JSON object", '{"id", "model_a", "model_b", "winner"}')
    missing = [k for k in ("id", "model_a", "model_b", "winner") if k not in obj]
    if missing:
        raise ZhllamaError(f"{where}: missing field(s) {', '.join(missing)}", '{"id", "model_a", "model_b", "winner"}')
    b = Battle(str(obj["id"]), str(obj["model_a"]), str(obj["model_b"]), str(obj["winner"]).strip().lower())
    if b.winner not in WINNERS:
        raise ZhllamaError(f"{where}: winner '{obj['winner']}' is not one of a, b, tie", "a: model_a won, b: model_b won")
    if b.model_a == b.model_b:
        raise ZhllamaError(f"{where}: model_a and model_b are both '{b.model_a}'", "a battle needs two different models")
    for m in (b.model_a, b.model_b):
        if models is not None and m not in models:
            raise ZhllamaError(f"{where}: unknown model '{m}'", f"models in this comparison: {', '.join(models)}")
    if question_ids is not None and b.qid not in question_ids:
        raise ZhllamaError(f"{where}: unknown question id '{b.qid}'", "ids must match the questions file")
    return b


def _score_a(b: Battle) -> float:
    return {"a": 1.0, "b": 0.0, "tie": 0.5}[b.winner]


def win_rates(battles: list[Battle]) -> dict[str, dict]:
    stats: dict[str, dict] = {}
    for b in battles:
        for model, won, lost in ((b.model_a, b.winner == "a", b.winner == "b"), (b.model_b, b.winner == "b", b.winner == "a")):
            s = stats.setdefault(model, {"battles": 0, "wins": 0, "losses": 0, "ties": 0})
            s["battles"] += 1
            s["wins"] += won
            s["losses"] += lost
            s["ties"] += not (won or lost)
    for s in stats.values():
        s["win_rate"] = s["wins"] / s["battles"]
        decided = s["wins"] + s["losses"]
        s["win_rate_no_tie"] = s["wins"] / decided if decided else None
    return stats


def online_elo(battles: list[Battle], k: float = 4.0, init: float = 1500.0) -> dict[str, float]:
    ratings: dict[str, float] = {}
    for b in battles:
        ra, rb = ratings.setdefault(b.model_a, init), ratings.setdefault(b.model_b, init)
        expected_a = 1.0 / (1.0 + 10 ** ((rb - ra) / 400.0))
        delta = k * (_score_a(b) - expected_a)
        ratings[b.model_a], ratings[b.model_b] = ra + delta, rb - delta
    return ratings


def elo_ratings(battles: list[Battle], k: float = 4.0, init: float = 1500.0, rounds: int = 1000,
                seed: int = 0) -> dict[str, float]:
    """Median online Elo over ``rounds`` bootstrap resamples (``rounds=0``: one pass in file order)."""
    if rounds <= 0:
        return online_elo(battles, k, init)
    rng = random.Random(seed)
    samples: dict[str, list[float]] = {}
    for _ in range(rounds):
        for model, r in online_elo(rng.choices(battles, k=len(battles)), k, init).items():
            samples.setdefault(model, []).append(r)
    # a model absent from a resample keeps its starting rating there
    return {m: statistics.median(v + [init] * (rounds - len(v))) for m, v in samples.items()}


def arena(battles: list[Battle], k: float = 4.0, init: float = 1500.0, rounds: int = 1000, seed: int = 0) -> list[dict]:
    """One row per model, sorted like the seeds' table: by win rate without ties, best first."""
    rates = win_rates(battles)
    elo = elo_ratings(battles, k, init, rounds, seed)
    rows = [{"model": m, **s, "elo": round(elo[m])} for m, s in rates.items()]
    rows.sort(key=lambda r: (r["win_rate_no_tie"] if r["win_rate_no_tie"] is not None else -1, r["elo"]), reverse=True)
    return rows


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


def arena_table(rows: list[dict]) -> str:
    lines = ["| System | Win Rate (no tie)↓ | Win Rate (with ties) | Battles (W/L/T) | Elo Rating |",
             "| --- | :---: | :---: | :---: | :---: |"]
    for r in rows:
        lines.append(f"| {r['model']} | {_pct(r['win_rate_no_tie'])} | {_pct(r['win_rate'])} | "
                     f"{r['battles']} ({r['wins']}/{r['losses']}/{r['ties']}) | {r['elo']} |")
    return "\n".join(lines) + "\n"

import json
import math

import pytest

from zhllama.cli import main
from zhllama.errors import ZhllamaError
from zhllama.eval.elo import Battle, arena, elo_ratings, online_elo, read_judgements, win_rates


def B(a, b, w, qid="1"):
    return Battle(qid, a, b, w)


def test_win_rates_with_and_without_ties():
    battles = [B("x", "y", "a"), B("x", "y", "tie"), B("y", "x", "a"), B("x", "z", "a"), B("z", "x", "tie")]
    r = win_rates(battles)
    assert (r["x"]["wins"], r["x"]["losses"], r["x"]["ties"], r["x"]["battles"]) == (2, 1, 2, 5)
    assert r["x"]["win_rate"] == pytest.approx(2 / 5) and r["x"]["win_rate_no_tie"] == pytest.approx(2 / 3)
    assert r["z"]["win_rate_no_tie"] == 0.0 and r["z"]["ties"] == 1


def test_online_elo_matches_the_formula():
    ratings = online_elo([B("x", "y", "a"), B("x", "y", "tie")], k=4, init=1500)
    ra, rb = 1502.0, 1498.0  # first battle: expected 0.5, x scores 1 -> +2
    e = 1 / (1 + 10 ** ((rb - ra) / 400))
    assert ratings["x"] == pytest.approx(ra + 4 * (0.5 - e))
    assert ratings["y"] == pytest.approx(rb - 4 * (0.5 - e))
    assert ratings["x"] + ratings["y"] == pytest.approx(3000)  # zero-sum


def test_bootstrap_is_seeded_and_ranks_the_stronger_model_first():
    battles = [B("strong", "weak", "a", str(i)) for i in range(30)] + [B("weak", "strong", "a", "x"), B("mid", "weak", "a")]
    battles += [B("strong", "mid", "a"), B("mid", "strong", "tie")]
    r1 = elo_ratings(battles, k=32, rounds=200, seed=1)
    assert r1 == elo_ratings(battles, k=32, rounds=200, seed=1)
    assert r1["strong"] > r1["mid"] > r1["weak"]
    rows = arena(battles, k=32, rounds=200)
    assert [r["model"] for r in rows][0] == "strong" and all(isinstance(r["elo"], int) for r in rows)


@pytest.mark.parametrize("line,needle", [
    ('{"id": "1", "model_a": "x", "model_b": "y", "winner": "c"}', "winner 'c' is not one of a, b, tie"),
    ('{"id": "1", "model_a": "x", "winner": "a"}', "missing field(s) model_b"),
    ('{"id": "1", "model_a": "x", "model_b": "x", "winner": "a"}', "both 'x'"),
    ('{"id": "1", "model_a": "x", "model_b": "q", "winner": "a"}', "unknown model 'q'"),
    ('{"id": "9", "model_a": "x", "model_b": "y", "winner": "a"}', "unknown question id '9'"),
    ("not json", "invalid JSON"),
])
def test_bad_judgements_name_file_and_line(tmp_path, line, needle):
    p = tmp_path / "j.jsonl"
    p.write_text('{"id": "1", "model_a": "x", "model_b": "y", "winner": "tie"}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(ZhllamaError) as e:
        read_judgements(p, ["x", "y"], {"1", "2"})
    assert needle in str(e.value) and "j.jsonl: line 2" in str(e.value)


def test_cli_judgements_alone(tmp_path, capsys):
    p = tmp_path / "j.jsonl"
    p.write_text("\n".join(json.dumps({"id": str(i), "model_a": "a2", "model_b": "plus", "winner": w})
                           for i, w in enumerate(["a", "a", "b", "tie"])) + "\n", encoding="utf-8")
    assert main(["eval", "compare", "--judgements", str(p), "--out", str(tmp_path / "o"), "--elo-rounds", "0"]) == 0
    printed = capsys.readouterr().out
    assert "| a2 | 66.67% | 50.00% | 4 (2/1/1) |" in printed
    rows = json.loads((tmp_path / "o" / "arena.json").read_text(encoding="utf-8"))
    expected = online_elo(read_judgements(p), k=4, init=1500)
    assert {r["model"]: r["elo"] for r in rows} == {m: round(v) for m, v in expected.items()}
    assert not math.isclose(expected["a2"], 1500)

"""`zhllama train pt` on a quiet terminal: one step bar and the result line; the per-step records go to the log."""

from __future__ import annotations

import json

import pytest

from zhllama.cli import main
from zhllama.logs import LOG_FILE


@pytest.fixture
def pt_argv(tmp_path, tiny_model_dir, pt_corpus, monkeypatch):
    monkeypatch.setenv("ZHLLAMA_LOG_DIR", str(tmp_path / "logs"))
    out = tmp_path / "run"
    argv = ["train", "pt", "--model", str(tiny_model_dir), "--train-files", str(pt_corpus), "--output-dir", str(out),
            "--block-size", "64", "--batch-size", "4", "--max-steps", "4", "--logging-steps", "1",
            "--save-steps", "1000", "--lora-rank", "4", "--validation-split", "0.1",
            "--cache-dir", str(tmp_path / "data-cache")]
    return argv, out


def _noise(text: str) -> list[str]:
    return [s for s in ("{'loss'", "{'train_runtime'", "Loading weights", "Warning", "Generating train split")
            if s in text]


def test_train_pt_prints_a_step_bar_and_logs_the_records(pt_argv, capfd):
    argv, out = pt_argv
    assert main(argv) == 0
    captured = capfd.readouterr()
    terminal = captured.out + captured.err
    assert _noise(terminal) == [], terminal
    assert "train pt: 100%" in terminal and "loss=" in terminal
    assert f"wrote {out / 'final'}" in captured.out
    log = (out / LOG_FILE).read_text(encoding="utf-8")
    steps = [json.loads(line.split(": ", 2)[2]) for line in log.splitlines() if "zhllama.train.steps: step" in line]
    assert [s["loss"] for s in steps if "loss" in s] == [h["loss"] for h in _history(out) if "loss" in h]
    assert len([s for s in steps if "loss" in s]) == 4


def test_verbose_shows_the_trainer_records(pt_argv, capfd):
    argv, out = pt_argv
    assert main(["--verbose"] + argv) == 0
    captured = capfd.readouterr()
    assert "{'loss'" in captured.out + captured.err
    assert not (out / LOG_FILE).exists()


def _history(out) -> list[dict]:
    return json.loads((out / "metrics.json").read_text(encoding="utf-8"))["log_history"]

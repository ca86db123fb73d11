"""A clean terminal (zhllama.logs): library logs, warnings and bars go to a log file; `--verbose` shows them."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from zhllama.logs import LOG_FILE, claim_output_folder, command_logging, quiet_terminal

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def log_home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("ZHLLAMA_LOG_DIR", str(tmp_path / "logs"))
    return tmp_path / "logs"


def test_warnings_and_library_records_go_to_the_file_and_own_warnings_stay(log_home, capfd):
    with command_logging("demo") as session:
        assert quiet_terminal()
        warnings.warn("a library's FutureWarning", FutureWarning)
        logging.getLogger("transformers.modeling_utils").warning("a transformers warning")
        logging.getLogger("peft.tuners").info("a peft record")
        logging.getLogger("zhllama.train.run").info("an INFO line of ours")
        logging.getLogger("zhllama.train.checkpoints").warning("skipping checkpoint-5")
    assert not quiet_terminal()
    err = capfd.readouterr().err
    assert err.strip() == "zhllama: warning: skipping checkpoint-5"
    assert session.path.parent == log_home  # no output folder: the log stays in the per-user folder
    text = session.path.read_text(encoding="utf-8")
    for line in ("FutureWarning: a library's FutureWarning", "a transformers warning", "a peft record",
                 "an INFO line of ours", "skipping checkpoint-5"):
        assert line in text


def test_the_log_ends_in_the_first_output_folder_named(tmp_path, log_home):
    out, later = tmp_path / "run", tmp_path / "stage"
    out.mkdir()
    later.mkdir()
    for n in range(2):  # a re-run appends
        with command_logging("pipeline", output_folder=None) as session:
            claim_output_folder(out)
            claim_output_folder(later)
            logging.getLogger("datasets").warning(f"run {n}")
        assert session.path == out / LOG_FILE
    text = (out / LOG_FILE).read_text(encoding="utf-8")
    assert "run 0" in text and "run 1" in text
    assert not (later / LOG_FILE).exists() and not list(log_home.iterdir())


def test_a_failed_command_leaves_its_output_folder_alone(tmp_path, log_home):
    out = tmp_path / "someone-elses-model"
    out.mkdir()
    with pytest.raises(RuntimeError), command_logging("model", output_folder=out) as session:
        logging.getLogger("transformers").warning("while failing")
        raise RuntimeError("boom")
    assert not (out / LOG_FILE).exists()
    assert session.path.parent == log_home and "while failing" in session.path.read_text(encoding="utf-8")


def test_verbose_leaves_the_libraries_on_the_terminal(capfd):
    with command_logging("demo", verbose=True) as session:
        assert session is None and not quiet_terminal()
        logging.getLogger("zhllama.model.resize").info("resized embeddings 10 -> 12 rows")
    assert "resized embeddings 10 -> 12 rows" in capfd.readouterr().err


def test_model_init_in_a_fresh_process_prints_one_line(tmp_path, tiny_tokenizer_dir, log_home):
    """transformers is first imported inside the command here: its own stderr handler and bars are taken off too."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "ZHLLAMA_LOG_DIR": str(log_home)}
    out = tmp_path / "model"
    cmd = [sys.executable, "-m", "zhllama", "model", "init", "--tokenizer", str(tiny_tokenizer_dir),
           "--hidden-size", "32", "--layers", "1", "--heads", "2", "--out", str(out)]
    quiet = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert quiet.returncode == 0, quiet.stderr
    assert (quiet.stdout + quiet.stderr).strip() == f"wrote {out}"
    assert "INFO" in (out / LOG_FILE).read_text(encoding="utf-8")

    loud = subprocess.run(cmd[:3] + ["--verbose"] + cmd[3:] + ["--overwrite"], capture_output=True, text=True,
                          env=env, timeout=300)
    assert loud.returncode == 0, loud.stderr
    assert "Writing model shards" in loud.stderr

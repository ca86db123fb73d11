"""``make test-engines`` cannot pass on skips: the engine_guard plugin fails a run in which a test
skipped because its engine is missing, and lets other skips (``../shared`` absent, a path that
runs only without the engine) pass."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent

CASES = '''
import pytest

def test_needs_an_engine():
    pytest.importorskip("zhllama_no_such_engine")

@pytest.mark.skipif(True, reason="bitsandbytes is installed")
def test_runs_only_without_it():
    pass

def test_plain():
    assert True
'''


def _pytest(tmp_path: Path, **env) -> subprocess.CompletedProcess:
    (tmp_path / "test_cases.py").write_text(CASES, encoding="utf-8")
    environ = {**{k: v for k, v in os.environ.items() if k != "ZHLLAMA_ENGINE_TESTS"}, "PYTHONPATH": str(TESTS), **env}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "engine_guard", "-p", "no:cacheprovider",
                           "test_cases.py"], cwd=tmp_path, env=environ, capture_output=True, text=True, timeout=120)


def test_a_missing_engine_fails_the_engine_run(tmp_path):
    proc = _pytest(tmp_path, ZHLLAMA_ENGINE_TESTS="1")
    assert proc.returncode == 1, proc.stdout
    assert "1 test(s) skipped for a missing engine" in proc.stdout
    assert "test_needs_an_engine" in proc.stdout and "test_runs_only_without_it:" not in proc.stdout


def test_the_ordinary_suite_may_skip_engines(tmp_path):
    proc = _pytest(tmp_path)
    assert proc.returncode == 0, proc.stdout
    assert "1 passed, 2 skipped" in proc.stdout

"""pytest plugin: under ``ZHLLAMA_ENGINE_TESTS=1`` (``make test-engines``), a test skipped because its
engine is missing fails the run. There the engines are installed, and a skip would pass a claim untested."""

from __future__ import annotations

import os

import pytest

# Skip reasons that mean an optional package is missing (pytest.importorskip, the suite's skipif marks).
MISSING_ENGINE = ("could not import", "is not installed", "No module named")


def pytest_sessionfinish(session, exitstatus):
    if not os.environ.get("ZHLLAMA_ENGINE_TESTS"):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    missing = [r for r in (reporter.stats.get("skipped", []) if reporter else [])
               if any(m in str(r.longrepr) for m in MISSING_ENGINE)]
    if missing:
        reporter.write_line(f"ZHLLAMA_ENGINE_TESTS: {len(missing)} test(s) skipped for a missing engine:", red=True)
        for r in missing:
            reporter.write_line(f"  {r.nodeid}: {r.longrepr[-1] if isinstance(r.longrepr, tuple) else r.longrepr}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED

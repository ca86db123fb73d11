"""benchmarks/gpu_check.py --smoke runs every stage on CPU and writes its table, so the GPU check cannot rot."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "gpu_check.py"


@pytest.mark.slow
def test_gpu_check_smoke_reports_every_stage(tmp_path):
    out = tmp_path / "check.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--out", str(out), "--wheels", str(tmp_path / "none")],
                          capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text(encoding="utf-8"))
    results = report["results"]
    assert set(results) == {"lora-pt", "lora-sft", "qlora-pt", "decode", "serve-2"}  # no flash-attention stage on CPU
    for name in ("lora-pt", "lora-sft", "decode", "serve-2"):
        assert results[name]["status"] == "ok", (name, results[name])
        assert results[name]["tokens_per_s"] > 0
    assert results["qlora-pt"]["status"] in ("ok", "skipped")  # skipped only where bitsandbytes is absent
    assert results["serve-2"]["tokens"] > 0 and results["decode"]["weight_gb"] > 0
    assert "| lora-pt | ok |" in proc.stdout

"""Two processes under torchrun (gloo on CPU) train a few steps and save a checkpoint that loads."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_torchrun_two_processes(tmp_path, tiny_model_dir, pt_corpus):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(free_port()), "-m", "zhllama", "train", "pt", "--model", str(tiny_model_dir),
           "--train-files", str(pt_corpus), "--output-dir", str(out), "--block-size", "64", "--batch-size", "2",
           "--max-steps", "3", "--save-steps", "2", "--logging-steps", "1", "--validation-split", "0",
           "--cache-dir", str(tmp_path / "cache"), "--lora-rank", "4"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["world_size"] == 2
    assert metrics["metrics"]["tokens_seen"] == 3 * 2 * 2 * 64  # 3 steps x 2 ranks x batch 2 x 64 tokens
    base = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    model = PeftModel.from_pretrained(base, str(out / "checkpoint-2"))
    with torch.no_grad():
        logits = model(torch.tensor([[1, 20, 30]])).logits
    assert torch.isfinite(logits).all()
    assert (out / "final" / "adapter_model.safetensors").is_file()

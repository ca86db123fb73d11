"""DeepSpeed ZeRO-2 / ZeRO-3 with the shipped configs over two CPU processes (gloo), where DeepSpeed is installed.

DeepSpeed installs on CPU (``pip install deepspeed``, its CPU accelerator); the suite's environment
does not carry it, so these tests are skipped there (docs/scale.md has the virtual environment they
were run in).  Each run must train like one process with the same global batch and leave a
checkpoint that loads with trained LoRA weights.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from test_train_distributed import free_port
from test_train_fsdp import _flags

pytest.importorskip("deepspeed")


@pytest.mark.slow
def test_zero2_and_zero3_on_two_processes_match_one_process_and_checkpoints_load(tmp_path, tiny_model_dir,
                                                                                  pt_corpus):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    flags = _flags(tiny_model_dir, pt_corpus, tmp_path)
    one = tmp_path / "one"
    single = subprocess.run([sys.executable, "-m", "zhllama", "train", "pt", *flags, "--output-dir", str(one),
                             "--batch-size", "4"], capture_output=True, text=True, timeout=400, env=env)
    assert single.returncode == 0, single.stderr[-3000:]
    m1 = json.loads((one / "metrics.json").read_text())
    steps = [h["loss"] for h in m1["log_history"] if "loss" in h]
    assert steps[-1] < steps[0] - 0.1  # the model learns, so equal losses are not standing still
    for stage in ("zero2", "zero3"):
        out = tmp_path / stage
        run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr",
                              "127.0.0.1", "--master_port", str(free_port()), "-m", "zhllama", "train", "pt", *flags,
                              "--output-dir", str(out), "--batch-size", "2", "--deepspeed", stage],
                             capture_output=True, text=True, timeout=400, env=env)
        assert run.returncode == 0, run.stderr[-3000:]
        m2 = json.loads((out / "metrics.json").read_text())
        assert (m2["world_size"], m2["sharding"]) == (2, "deepspeed")
        loss1, loss2 = m1["metrics"]["train_loss"], m2["metrics"]["train_loss"]
        assert abs(loss2 - loss1) / loss1 < 0.01, (stage, loss1, loss2)
        model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(tiny_model_dir)),
                                          str(out / "checkpoint-3"))
        with torch.no_grad():
            assert torch.isfinite(model(torch.tensor([[1, 20, 30]])).logits).all()
        lora_b = [p for n, p in model.named_parameters() if "lora_B" in n]
        assert lora_b and any(p.abs().sum() > 0 for p in lora_b), stage  # gathered, trained weights
        assert (out / "final" / "adapter_model.safetensors").is_file()

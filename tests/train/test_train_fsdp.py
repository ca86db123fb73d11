"""FSDP2 over two CPU processes (gloo) trains like one process with the same global batch, and its checkpoints load."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from test_train_distributed import free_port

SHIM = Path(__file__).with_name("fsdp_cpu.py")


def _flags(model, corpus, tmp_path) -> list[str]:
    return ["--model", str(model), "--train-files", str(corpus), "--block-size", "64", "--max-steps", "6",
            "--save-steps", "3", "--logging-steps", "1", "--validation-split", "0", "--lora-rank", "4",
            "--learning-rate", "3e-2", "--lr-scheduler", "constant", "--warmup-ratio", "0",
            "--cache-dir", str(tmp_path / "cache")]


@pytest.mark.slow
def test_fsdp_two_processes_match_one_process_and_checkpoints_load(tmp_path, tiny_model_dir, pt_corpus):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    flags = _flags(tiny_model_dir, pt_corpus, tmp_path)
    one, two = tmp_path / "one", tmp_path / "fsdp"
    single = subprocess.Popen([sys.executable, "-m", "zhllama", "train", "pt", *flags, "--output-dir", str(one),
                               "--batch-size", "4"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sharded = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr",
                              "127.0.0.1", "--master_port", str(free_port()), str(SHIM), "train", "pt", *flags,
                              "--output-dir", str(two), "--batch-size", "2", "--fsdp", "full_shard"],
                             capture_output=True, text=True, timeout=400, env=env)
    _, single_err = single.communicate(timeout=400)
    assert sharded.returncode == 0, sharded.stderr[-3000:]
    assert single.returncode == 0, single_err[-3000:]
    m1, m2 = (json.loads((d / "metrics.json").read_text()) for d in (one, two))
    assert (m2["world_size"], m2["sharding"]) == (2, "fsdp2") and m1["sharding"] is None
    loss1, loss2 = m1["metrics"]["train_loss"], m2["metrics"]["train_loss"]
    steps = [h["loss"] for h in m1["log_history"] if "loss" in h]
    assert steps[-1] < steps[0] - 0.1  # the model learns, so the losses are not equal by standing still
    assert abs(loss2 - loss1) / loss1 < 0.01, (loss1, loss2)
    base = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    model = PeftModel.from_pretrained(base, str(two / "checkpoint-3"))
    with torch.no_grad():
        assert torch.isfinite(model(torch.tensor([[1, 20, 30]])).logits).all()
    lora_b = [p for n, p in model.named_parameters() if "lora_B" in n]
    assert lora_b and any(p.abs().sum() > 0 for p in lora_b)  # trained, gathered weights, not empty shards
    assert (two / "final" / "adapter_model.safetensors").is_file()


@pytest.mark.parametrize("over, message", [
    ({"qlora": True, "full": True}, "qlora and full are both set"),
    ({"qlora": True, "fsdp": "full_shard"}, "qlora cannot be combined with fsdp or deepspeed"),
    ({"fsdp": "full_shard", "deepspeed": "zero2"}, "fsdp and deepspeed are both set"),
])
def test_scale_options_that_do_not_combine_are_refused(over, message, tmp_path):
    from zhllama.errors import ZhllamaError
    from zhllama.train import TrainConfig

    cfg = TrainConfig(model="m", train_files=["t.txt"], output_dir=str(tmp_path / "o"), **over)
    with pytest.raises(ZhllamaError, match=message):
        cfg.check("pt")


def test_fsdp_option_becomes_fsdp2_training_arguments():
    from zhllama.train.scale import fsdp_arguments

    assert fsdp_arguments(None) == {}
    full, grad_op = fsdp_arguments("full_shard"), fsdp_arguments("shard_grad_op")
    assert full["fsdp"] is True and full["fsdp_config"]["version"] == 2
    assert full["fsdp_config"]["reshard_after_forward"] is True and grad_op["fsdp_config"]["reshard_after_forward"] is False

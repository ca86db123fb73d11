"""Interrupt a run after a checkpoint, resume it, and get what an uninterrupted run gets."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from zhllama.errors import ZhllamaError
from zhllama.train import train


def interrupt_at(step: int):
    from transformers import TrainerCallback

    class Interrupt(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step == step:
                raise KeyboardInterrupt  # what Ctrl-C or a killed job does mid-run

    return Interrupt()


def final_loss(out):
    history = json.loads((out / "metrics.json").read_text())["log_history"]
    return [h["loss"] for h in history if "loss" in h][-1]


def test_resume_matches_uninterrupted_run(tmp_path, tiny_model_dir, pt_corpus, tiny_config):
    # dropout, a decaying schedule and accumulation: RNG, scheduler and data position must all be restored
    over = dict(max_steps=6, save_steps=3, gradient_accumulation_steps=2, batch_size=2, lora_dropout=0.1,
                lr_scheduler="cosine", validation_split=0.0)
    straight = train(tiny_config(tiny_model_dir, [pt_corpus], tmp_path / "straight", **over), "pt")

    cut = tmp_path / "cut"
    with pytest.raises(KeyboardInterrupt):
        train(tiny_config(tiny_model_dir, [pt_corpus], cut, **over), "pt", callbacks=[interrupt_at(4)])
    assert (cut / "checkpoint-3" / "trainer_state.json").is_file()
    assert not (cut / "final").exists() and not (cut / "metrics.json").exists()  # does not look complete

    with pytest.raises(ZhllamaError, match="--resume"):
        train(tiny_config(tiny_model_dir, [pt_corpus], cut, **over), "pt")
    resumed = train(tiny_config(tiny_model_dir, [pt_corpus], cut, resume=True, **over), "pt")

    a = load_file(f"{straight['model_dir']}/adapter_model.safetensors")
    b = load_file(f"{resumed['model_dir']}/adapter_model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(b[k], a[k], atol=1e-6, rtol=1e-5)
    assert final_loss(cut) == pytest.approx(final_loss(tmp_path / "straight"), abs=1e-5)
    assert json.loads((cut / "metrics.json").read_text())["resumed_from"].endswith("checkpoint-3")


def test_partial_checkpoint_is_skipped(tmp_path):
    from zhllama.train.checkpoints import plan_output_dir

    (tmp_path / "checkpoint-2").mkdir(parents=True)
    (tmp_path / "checkpoint-2" / "trainer_state.json").write_text("{}")
    (tmp_path / "checkpoint-4").mkdir()  # interrupted while saving: no trainer_state.json
    assert plan_output_dir(tmp_path, resume=True, overwrite=False).resume_from.endswith("checkpoint-2")
    assert plan_output_dir(tmp_path, resume=False, overwrite=True).wipe

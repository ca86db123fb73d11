"""zhllama train orpo on the tiny model: ORPO's inputs are the SFT ids, training logs the odds-ratio
metrics and raises the held-out margin, the adapter loads, and the command trains a full model."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import torch
from align_helpers import align_config
from safetensors.torch import load_file

from zhllama.align import train_align
from zhllama.align.reward import logprob_margin


def test_orpo_columns_are_the_pairs_ids_with_the_prompt_masked_in_the_labels():
    from datasets import Dataset

    from zhllama.align.orpo import orpo_columns

    pairs = Dataset.from_dict({"prompt_ids": [[1, 5, 6]], "chosen_ids": [[7, 2]], "rejected_ids": [[8, 9, 2]]})
    row = orpo_columns(pairs)[0]
    assert row["prompt_input_ids"] == [1, 5, 6] and row["prompt_attention_mask"] == [1, 1, 1]
    assert row["chosen_input_ids"] == [1, 5, 6, 7, 2] and row["chosen_labels"] == [-100, -100, -100, 7, 2]
    assert row["rejected_input_ids"] == [1, 5, 6, 8, 9, 2] and row["rejected_labels"] == [-100, -100, -100, 8, 9, 2]
    assert row["rejected_attention_mask"] == [1] * 6 and set(row) == {
        f"{side}_{k}" for side in ("chosen", "rejected") for k in ("input_ids", "attention_mask", "labels")
    } | {"prompt_input_ids", "prompt_attention_mask"}


@pytest.fixture(scope="module")
def orpo_run(tmp_path_factory, tiny_model_dir, preference_files):
    out = tmp_path_factory.mktemp("orpo") / "run"
    return train_align(align_config("orpo", tiny_model_dir, [preference_files["train"]], out, learning_rate=2e-3,
                                    validation_split=0.1), "orpo")


def test_orpo_logs_the_odds_ratio_and_raises_the_held_out_margin(orpo_run, tiny_model_dir, preference_files):
    m = orpo_run["metrics"]
    assert math.isfinite(m["train_loss"]) and m["eval_log_odds_chosen"] > 0
    history = json.loads(open(f"{orpo_run['output_dir']}/metrics.json").read())["log_history"]
    steps = [h for h in history if "loss" in h]
    assert len(steps) == 12 and all(math.isfinite(h["log_odds_ratio"]) and "nll_loss" in h for h in steps)
    heldout = [str(preference_files["heldout"])]
    before = logprob_margin(str(tiny_model_dir), heldout, template="alpaca")
    after = logprob_margin(str(tiny_model_dir), heldout, lora=orpo_run["model_dir"])
    assert after["mean_margin"] > before["mean_margin"] + 1.0


def test_orpo_writes_a_trained_adapter_that_loads(orpo_run, tiny_model_dir):
    from zhllama.model.load import load_model

    meta = json.loads(open(f"{orpo_run['model_dir']}/zhllama.json").read())
    assert meta["stage"] == "orpo" and meta["lora"] is True and meta["template"] == "alpaca"
    adapter = load_file(f"{orpo_run['model_dir']}/adapter_model.safetensors")
    assert any(k.endswith("lora_B.weight") and v.abs().sum() > 0 for k, v in adapter.items())  # B starts at zero
    model, _ = load_model(str(tiny_model_dir), lora=orpo_run["model_dir"], device="cpu")
    base, _ = load_model(str(tiny_model_dir), device="cpu")
    ids = torch.tensor([[1, 50, 60, 70]])
    with torch.no_grad():
        assert not torch.allclose(model(ids).logits, base(ids).logits)


def test_train_orpo_command_trains_a_full_model(tmp_path, tiny_model_dir, preference_files):
    out = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "zhllama", "train", "orpo", "--model", str(tiny_model_dir),
                        "--train-files", str(preference_files["heldout"]), "--output-dir", str(out), "--full",
                        "--max-steps", "2", "--batch-size", "4", "--learning-rate", "1e-3", "--max-length", "96",
                        "--validation-split", "0.2", "--beta", "0.5"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    last = r.stdout.strip().splitlines()[-1]
    assert last.startswith("train loss ") and "validation log odds ratio" in last and last.endswith(f"wrote {out}/final")
    trained, base = load_file(out / "final" / "model.safetensors"), load_file(tiny_model_dir / "model.safetensors")
    changed = [k for k in base if k in trained and not torch.equal(trained[k], base[k])]
    assert changed and json.loads((out / "final" / "zhllama.json").read_text())["stage"] == "orpo"

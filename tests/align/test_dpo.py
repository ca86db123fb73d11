"""zhllama train dpo on the tiny model: the held-out margin rises, the adapter merges and loads,
an interrupted run resumes to the same adapter."""

from __future__ import annotations

import json

import pytest
import torch
from align_helpers import align_config
from safetensors.torch import load_file

from zhllama.align import train_align
from zhllama.align.reward import logprob_margin
from zhllama.errors import ZhllamaError


@pytest.fixture(scope="module")
def dpo_run(tmp_path_factory, tiny_model_dir, preference_files):
    out = tmp_path_factory.mktemp("dpo") / "run"
    return train_align(align_config("dpo", tiny_model_dir, [preference_files["train"]], out, learning_rate=2e-3,
                                    validation_split=0.1), "dpo")


def test_dpo_raises_the_held_out_margin(dpo_run, tiny_model_dir, preference_files):
    heldout = [str(preference_files["heldout"])]
    before = logprob_margin(str(tiny_model_dir), heldout, template="alpaca")
    after = logprob_margin(str(tiny_model_dir), heldout, lora=dpo_run["model_dir"])
    assert after["mean_margin"] > before["mean_margin"] + 1.0
    assert dpo_run["metrics"]["eval_rewards/margins"] > 0


def test_dpo_adapter_records_its_template_and_merges_into_a_loadable_model(dpo_run, tiny_model_dir, tmp_path):
    from zhllama.model.load import load_model
    from zhllama.train import merge_adapters

    meta = json.loads(open(f"{dpo_run['model_dir']}/zhllama.json").read())
    assert meta["stage"] == "dpo" and meta["lora"] is True and meta["template"] == "alpaca"
    merged = merge_adapters(str(tiny_model_dir), [dpo_run["model_dir"]], tmp_path / "merged")
    assert json.loads((merged / "zhllama.json").read_text())["template"] == "alpaca"
    model, _ = load_model(str(merged), device="cpu")
    base, _ = load_model(str(tiny_model_dir), device="cpu")
    ids = torch.tensor([[1, 50, 60, 70]])
    with torch.no_grad():
        assert not torch.allclose(model(ids).logits, base(ids).logits)


def interrupt_at(step: int):
    from transformers import TrainerCallback

    class Interrupt(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step == step:
                raise KeyboardInterrupt

    return Interrupt()


def test_interrupted_dpo_resumes_to_the_uninterrupted_adapter(tmp_path, tiny_model_dir, preference_files):
    over = dict(max_steps=4, save_steps=2, batch_size=4, lr_scheduler="cosine")
    files = [preference_files["train"]]
    straight = train_align(align_config("dpo", tiny_model_dir, files, tmp_path / "straight", **over), "dpo")
    cut = tmp_path / "cut"
    with pytest.raises(KeyboardInterrupt):
        train_align(align_config("dpo", tiny_model_dir, files, cut, **over), "dpo", callbacks=[interrupt_at(3)])
    with pytest.raises(ZhllamaError, match="--resume"):
        train_align(align_config("dpo", tiny_model_dir, files, cut, **over), "dpo")
    resumed = train_align(align_config("dpo", tiny_model_dir, files, cut, resume=True, **over), "dpo")
    a = load_file(f"{straight['model_dir']}/adapter_model.safetensors")
    b = load_file(f"{resumed['model_dir']}/adapter_model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(b[k], a[k], atol=1e-6, rtol=1e-5)
    assert json.loads((cut / "metrics.json").read_text())["resumed_from"].endswith("checkpoint-2")


def test_full_dpo_and_full_rm_write_full_models(tmp_path, tiny_model_dir, preference_files):
    from transformers import AutoConfig

    files = [preference_files["heldout"]]
    dpo = train_align(align_config("dpo", tiny_model_dir, files, tmp_path / "dpo", full=True, max_steps=2, batch_size=4), "dpo")
    assert (tmp_path / "dpo" / "final" / "model.safetensors").is_file()
    assert json.loads(open(f"{dpo['model_dir']}/zhllama.json").read())["lora"] is False
    rm = train_align(align_config("rm", tiny_model_dir, files, tmp_path / "rm", full=True, max_steps=2, batch_size=4), "rm")
    assert AutoConfig.from_pretrained(rm["model_dir"]).architectures == ["LlamaForSequenceClassification"]

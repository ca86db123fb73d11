"""zhllama merge: merged logits equal peft's, vocabularies grow adapter after adapter, mismatches refused."""

from __future__ import annotations

import json

import pytest
import torch

from zhllama.errors import ZhllamaError
from zhllama.templates import get_template
from zhllama.tokenizer.load import load_tokenizer
from zhllama.train import merge_adapters, train


class KeepModel:
    """A Trainer callback that keeps a reference to the trained model."""

    def __init__(self):
        from transformers import TrainerCallback

        outer = self

        class _CB(TrainerCallback):
            def on_train_end(self, args, state, control, model=None, **kw):
                outer.model = model

        self.callback = _CB()
        self.model = None


@pytest.fixture(scope="module")
def plus_adapter(tmp_path_factory, tiny_model_dir, pt_corpus, grown_tokenizers, tiny_config):
    """Pre-training LoRA on the grown tokenizer (the model is resized 1,200 -> 1,210 rows)."""
    plus, _ = grown_tokenizers
    out = tmp_path_factory.mktemp("plus") / "run"
    keep = KeepModel()
    result = train(tiny_config(tiny_model_dir, [pt_corpus], out, tokenizer=str(plus), max_steps=4,
                               modules_to_save=[]), "pt", callbacks=[keep.callback])
    return result, keep.model


def peft_reference_logits(base_dir, adapters, ids):
    """Logits of the base with the adapters applied by peft (the last one left unmerged)."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from zhllama.model.load import fit_vocabulary, read_adapter_shapes

    model = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch.float32)
    for i, a in enumerate(adapters):
        fit_vocabulary(model, a, read_adapter_shapes(a))
        model = PeftModel.from_pretrained(model, str(a))
        if i < len(adapters) - 1:
            model = model.merge_and_unload()
    model.eval()
    with torch.no_grad():
        return model(ids).logits


def merged_logits(folder, ids):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(folder))
    model.eval()
    with torch.no_grad():
        return model(ids).logits


def test_adapter_holds_trained_resized_embeddings(plus_adapter, tiny_model_dir):
    from safetensors.torch import load_file

    result, trained = plus_adapter
    saved = load_file(f"{result['model_dir']}/adapter_model.safetensors")
    emb = trained.base_model.model.model.embed_tokens.modules_to_save["default"].weight.detach()
    head = trained.base_model.model.lm_head.modules_to_save["default"].weight.detach()
    assert emb.shape[0] == 1210  # resized automatically, and embed_tokens/lm_head added to modules_to_save
    assert torch.equal(saved["base_model.model.model.embed_tokens.weight"], emb)
    assert torch.equal(saved["base_model.model.lm_head.weight"], head)
    assert not [k for k in saved if "original_module" in k or "modules_to_save" in k]  # one copy, not three
    assert not torch.equal(emb[1200:], torch.zeros_like(emb[1200:]))
    meta = json.loads(open(result["model_dir"] + "/zhllama.json").read())
    assert meta["vocab_size"] == 1210 and meta["tokenizer_size"] == 1210


def test_merged_logits_equal_peft_logits(plus_adapter, tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    result, _ = plus_adapter
    out = merge_adapters(str(tiny_model_dir), [result["model_dir"]], tmp_path / "merged", max_shard_size="200KB")
    assert (out / "model.safetensors.index.json").is_file()  # sharded
    for name in ("tokenizer.model", "tokenizer.json", "generation_config.json", "zhllama.json"):
        assert (out / name).is_file(), name
    ids = torch.tensor([[1, 5, 77, 300, 1201, 1205, 1209, 42]])
    ref = peft_reference_logits(tiny_model_dir, [result["model_dir"]], ids)
    got = merged_logits(out, ids)
    assert got.shape[-1] == 1210
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)
    assert AutoModelForCausalLM.from_pretrained(str(out)).config.vocab_size == 1210


def test_vocabulary_grows_twice(plus_adapter, tiny_model_dir, sft_data, grown_tokenizers, tmp_path, tiny_config):
    """Base 1,200 -> plus adapter 1,210 -> plus2 adapter 1,211 (as 32,000 -> 49,953 -> 49,954)."""
    result, _ = plus_adapter
    _, plus2 = grown_tokenizers
    merged1 = merge_adapters(str(tiny_model_dir), [result["model_dir"]], tmp_path / "merged1")
    sft = train(tiny_config(merged1, [sft_data], tmp_path / "sft", tokenizer=str(plus2), max_steps=3,
                            template="alpaca"), "sft")
    adapters = [result["model_dir"], sft["model_dir"]]
    out = merge_adapters(str(tiny_model_dir), adapters, tmp_path / "merged2", dtype="float32")
    ids = torch.tensor([[1, 9, 1203, 1210, 600, 2]])
    ref = peft_reference_logits(tiny_model_dir, adapters, ids)
    got = merged_logits(out, ids)
    assert got.shape[-1] == 1211
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)
    assert json.loads((out / "zhllama.json").read_text())["template"] == "alpaca"
    assert load_tokenizer(out).chat_template == get_template("alpaca").jinja()
    with pytest.raises(ZhllamaError, match="smaller vocabulary goes first"):
        merge_adapters(str(tiny_model_dir), adapters[::-1], tmp_path / "reversed")
    assert not (tmp_path / "reversed").exists()


def test_merge_refuses_other_architecture(plus_adapter, tiny_tokenizer_dir, tmp_path):
    from zhllama.model.init import InitConfig, init_model

    other = init_model(InitConfig(tokenizer=str(tiny_tokenizer_dir), out=str(tmp_path / "other"), hidden_size=32,
                                  layers=2, heads=4, intermediate_size=64, max_position=128))
    result, _ = plus_adapter
    with pytest.raises(ZhllamaError, match="does not fit the base model"):
        merge_adapters(str(other), [result["model_dir"]], tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_merge_bad_input(plus_adapter, tiny_model_dir, tmp_path):
    result, _ = plus_adapter
    with pytest.raises(ZhllamaError, match="not a LoRA adapter"):
        merge_adapters(str(tiny_model_dir), [str(tiny_model_dir)], tmp_path / "x")
    with pytest.raises(ZhllamaError, match="not found"):
        merge_adapters(str(tiny_model_dir), [str(tmp_path / "missing")], tmp_path / "x")
    (tmp_path / "exists").mkdir()
    (tmp_path / "exists" / "f").write_text("x")
    with pytest.raises(ZhllamaError, match="already exists"):
        merge_adapters(str(tiny_model_dir), [result["model_dir"]], tmp_path / "exists")

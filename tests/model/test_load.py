"""The one loading module: adapters trained on a padded or grown vocabulary load everywhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from zhllama.errors import ZhllamaError


@pytest.fixture(scope="module")
def padded_adapter(tmp_path_factory, tiny_model_dir, builtin_text):
    """A pt LoRA adapter trained with pad_vocab_to_multiple_of=64: 1,200 rows padded to 1,216."""
    from zhllama.train import TrainConfig, train

    root = tmp_path_factory.mktemp("padded")
    corpus = root / "corpus.txt"
    corpus.write_text("\n".join(builtin_text["zh"][:40]) + "\n", encoding="utf-8")
    cfg = TrainConfig(model=str(tiny_model_dir), train_files=[str(corpus)], output_dir=str(root / "run"),
                      block_size=64, batch_size=2, max_steps=2, lora_rank=4, save_steps=1000, logging_steps=1,
                      pad_vocab_to_multiple_of=64, validation_split=0.0, cache_dir=str(root / "cache"))
    return train(cfg, "pt")["model_dir"]


def test_padded_adapter_carries_padded_rows(padded_adapter):
    meta = json.loads(open(f"{padded_adapter}/zhllama.json").read())
    assert meta["vocab_size"] == 1216 and meta["tokenizer_size"] == 1200


def test_engine_loads_adapter_trained_with_padded_vocabulary(tiny_model_dir, padded_adapter):
    from zhllama.infer.engine import Engine
    from zhllama.infer.sampling import SamplingParams

    engine = Engine.load(tiny_model_dir, lora=padded_adapter, template="none", device="cpu")
    assert engine.model.get_input_embeddings().weight.shape[0] == 1216
    (done,) = engine.generate([engine.text_prompt("中国")], SamplingParams(max_new_tokens=4, temperature=0.0))
    assert done.completion_tokens > 0


def test_generate_cli_with_padded_adapter(tiny_model_dir, padded_adapter, tmp_path):
    inp, out = tmp_path / "in.txt", tmp_path / "out.jsonl"
    inp.write_text("中国\n", encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "zhllama", "generate", "--model", str(tiny_model_dir), "--lora",
                           str(padded_adapter), "--input", str(inp), "--output", str(out), "--max-new-tokens", "3",
                           "--temperature", "0", "--device", "cpu"],
                          capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=300)
    assert proc.returncode == 0, proc.stderr
    (row,) = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert row["prompt"] == "中国" and "output" in row


def test_adapter_for_another_architecture_is_a_one_line_error(tiny_tokenizer_dir, padded_adapter, tmp_path):
    from zhllama.infer.engine import Engine
    from zhllama.model.init import InitConfig, init_model

    other = init_model(InitConfig(tokenizer=str(tiny_tokenizer_dir), out=str(tmp_path / "other"), hidden_size=32,
                                  layers=2, heads=4, intermediate_size=64, max_position=128))
    with pytest.raises(ZhllamaError, match="does not fit the base model"):
        Engine.load(other, lora=padded_adapter, device="cpu")


def test_every_kind_of_tokenizer_gives_the_same_ids(tiny_tokenizer_dir, tiny_sp_model, tmp_path):
    import shutil

    from zhllama.tokenizer.load import load_tokenizer

    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copyfile(tiny_sp_model, bare / "tokenizer.model")
    text = "中国的首都是北京。 Return  the value of x<s>"
    ids = load_tokenizer(tiny_tokenizer_dir)(text)["input_ids"]
    assert load_tokenizer(tiny_sp_model)(text)["input_ids"] == ids  # a .model file
    assert load_tokenizer(bare)(text)["input_ids"] == ids  # a folder with tokenizer.model only
    (bare / "tokenizer_config.json").write_text(json.dumps({"add_eos_token": True}), encoding="utf-8")
    assert load_tokenizer(bare)(text)["input_ids"] == ids + [2]  # its tokenizer_config.json settings are kept


def test_tokenizer_errors_are_one_line(tmp_path):
    from zhllama.tokenizer.load import load_tokenizer

    with pytest.raises(ZhllamaError, match="tokenizer not found"):
        load_tokenizer(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ZhllamaError, match="empty holds no tokenizer"):
        load_tokenizer(tmp_path / "empty")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "tokenizer.json").write_text("{not json")
    with pytest.raises(ZhllamaError, match="cannot load a tokenizer"):
        load_tokenizer(tmp_path / "broken")
    with pytest.raises(ZhllamaError, match="cannot load a tokenizer from nobody/no-such-model"):
        load_tokenizer("nobody/no-such-model")  # a hub id, offline in the tests


def test_hub_ids_and_local_paths(tmp_path, monkeypatch):
    from zhllama.checks import is_hub_id, is_local

    monkeypatch.chdir(tmp_path)
    assert is_hub_id("meta-llama/Llama-2-7b-hf") and not is_local("meta-llama/Llama-2-7b-hf")
    for path in ("./a/b", "/a/b", "~/a", "model", "runs/pt/model"):
        assert not is_hub_id(path) and is_local(path), path
    (tmp_path / "org" / "name").mkdir(parents=True)
    assert not is_hub_id("org/name")  # exists here
    assert is_hub_id("other/name", root=tmp_path / "x") and is_hub_id("name/x", root=tmp_path / "org")
    (tmp_path / "org" / "name" / "x").mkdir()
    assert not is_hub_id("name/x", root=tmp_path / "org")  # exists under the recipe's folder


def test_one_extension_check(tiny_tokenizer, mistral_sp_model):
    from zhllama.model.load import check_tokenizer_extends_base
    from zhllama.tokenizer.load import load_tokenizer

    other = load_tokenizer(mistral_sp_model)
    check_tokenizer_extends_base(tiny_tokenizer, tiny_tokenizer)
    with pytest.raises(ZhllamaError, match=r"the tokenizer does not extend the model's tokenizer: it has 1,200 tokens, "
                                           r"fewer than the 32,000 there") as e:
        check_tokenizer_extends_base(tiny_tokenizer, other)
    assert "zhllama tokenizer merge" in e.value.hint
    with pytest.raises(ZhllamaError, match=r"tokenizer X does not extend the base tokenizer: id \d+ is .* there but"):
        check_tokenizer_extends_base(other, tiny_tokenizer, "tokenizer X", "the base tokenizer")


def test_no_model_or_tokenizer_is_loaded_outside_the_loading_module():
    from pathlib import Path

    import zhllama

    src = Path(zhllama.__file__).parent
    loaders = {src / "model" / "load.py", src / "tokenizer" / "load.py"}  # models / tokenizers
    sites = [f"{p.relative_to(src)}:{i}" for p in src.rglob("*.py") if p not in loaders
             for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
             if "from_pretrained(" in line]
    assert sites == []


def test_padding_rows_are_never_generated(tiny_model_dir, padded_adapter):
    from zhllama.infer.engine import Engine
    from zhllama.infer.sampling import SamplingParams
    from zhllama.model.load import load_model

    model, tok = load_model(tiny_model_dir, lora=padded_adapter, merge_lora=True, device="cpu")
    assert model.lm_head.weight.shape[0] == 1216 and len(tok) == 1200

    def favour_padding(module, inputs, logits):
        logits[..., len(tok):] += 1e4
        return logits

    model.lm_head.register_forward_hook(favour_padding)
    engine = Engine(model, tok)
    for params in (SamplingParams(max_new_tokens=6, temperature=0.0), SamplingParams(max_new_tokens=6, seed=1)):
        (done,) = engine.generate([engine.text_prompt("中国")], params)
        assert done.completion_tokens == 6 and max(done.token_ids) < len(tok)

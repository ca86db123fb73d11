import json

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from zhllama.cli import main
from zhllama.templates import get_template


def test_tiny_model_matches_tokenizer_and_loads(tiny_model_dir, tiny_tokenizer):
    cfg = json.loads((tiny_model_dir / "config.json").read_text())
    assert cfg["vocab_size"] == len(tiny_tokenizer)
    assert (tiny_model_dir / "model.safetensors").is_file()
    assert (tiny_model_dir / "tokenizer.model").is_file()
    assert AutoTokenizer.from_pretrained(tiny_model_dir).chat_template == get_template("none").jinja()
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    ids = torch.tensor([tiny_tokenizer("你好 world")["input_ids"]])
    assert model(ids).logits.shape == (1, ids.shape[1], len(tiny_tokenizer))


def test_model_init_cli_refuses_existing_output(tiny_tokenizer_dir, tmp_path, capsys):
    out = tmp_path / "m"
    args = ["model", "init", "--tokenizer", str(tiny_tokenizer_dir), "--hidden-size", "32", "--layers", "1",
            "--heads", "2", "--out", str(out)]
    assert main(args) == 0
    assert main(args) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(args + ["--overwrite"]) == 0

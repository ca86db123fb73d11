"""`zhllama train` / `zhllama merge` from the command line: recipes, flags and one-line errors (exit 2)."""

from __future__ import annotations

import json

import pytest

from zhllama.cli import main


def run_cli(argv, capsys):
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def write_recipe(path, **fields):
    import yaml

    path.write_text(yaml.safe_dump(fields, allow_unicode=True), encoding="utf-8")
    return path


def test_help_lists_every_recipe_key(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "pt", "--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--config", "--lora-rank", "--modules-to-save", "--deepspeed", "--resume", "--full", "--block-size"):
        assert flag in text


def test_recipe_with_flag_overrides_trains(tmp_path, tiny_model_dir, sft_data, capsys):
    recipe = write_recipe(tmp_path / "r.yaml", model=str(tiny_model_dir), train_files=[str(sft_data)],
                          output_dir=str(tmp_path / "run"), template="llama2-zh", max_length=160, lora_rank=4,
                          max_steps=50, logging_steps=1, cache_dir=str(tmp_path / "cache"))
    code, out, err = run_cli(["train", "sft", "--config", str(recipe), "--max-steps", "2", "--lora-rank", "2"], capsys)
    assert code == 0, err
    assert "wrote" in out
    adapter = json.loads((tmp_path / "run" / "final" / "adapter_config.json").read_text())
    assert adapter["r"] == 2
    assert json.loads((tmp_path / "run" / "final" / "zhllama.json").read_text())["template"] == "llama2-zh"
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["metrics"]["epoch"] > 0


@pytest.mark.parametrize("recipe,match", [
    ({"lora_rnak": 8}, "did you mean 'lora_rank'"),
    ({"lora_rank": "eight"}, "lora_rank: expected a number"),
    ({"precision": "fp8"}, "precision"),
])
def test_malformed_recipe(tmp_path, recipe, match, capsys):
    path = write_recipe(tmp_path / "bad.yaml", **recipe)
    code, _, err = run_cli(["train", "pt", "--config", str(path)], capsys)
    assert code == 2 and match in err and "Traceback" not in err


def test_bad_inputs_exit_2(tmp_path, tiny_model_dir, pt_corpus, sft_data, capsys):
    base = ["--model", str(tiny_model_dir), "--cache-dir", str(tmp_path / "cache")]
    cases = [
        (["train", "pt", "--train-files", str(pt_corpus)], "'output_dir' is not set"),
        (["train", "pt", "--output-dir", str(tmp_path / "o")], "'train_files' is not set"),
        (["train", "pt", "--train-files", str(tmp_path / "nope.txt"), "--output-dir", str(tmp_path / "o")],
         "training data file not found"),
        (["train", "sft", "--train-files", str(sft_data), "--output-dir", str(tmp_path / "o"), "--template", "vicuna"],
         "unknown template 'vicuna'"),
        (["train", "pt", "--train-files", str(pt_corpus), "--output-dir", str(tmp_path / "o"), "--precision", "bf16"],
         "needs a CUDA GPU"),
        (["train", "pt", "--train-files", str(pt_corpus), "--output-dir", str(tmp_path / "o"),
          "--lora-target-modules", "q_prj"], "did you mean 'q_proj'"),
        (["train", "pt", "--train-files", str(pt_corpus), "--output-dir", str(tmp_path / "o"), "--deepspeed",
          str(tmp_path / "ds.json")], "DeepSpeed"),
    ]
    for argv, match in cases:
        code, _, err = run_cli(argv[:2] + base + argv[2:], capsys)
        assert code == 2 and match in err, (argv, err)

    busy = tmp_path / "busy"
    (busy / "checkpoint-5").mkdir(parents=True)
    (busy / "checkpoint-5" / "trainer_state.json").write_text("{}")
    code, _, err = run_cli(["train", "pt", *base, "--train-files", str(pt_corpus), "--output-dir", str(busy)], capsys)
    assert code == 2 and "checkpoint-5" in err and "--resume" in err


def test_tokenizer_that_does_not_extend_the_base(tmp_path, tiny_model_dir, pt_corpus, mistral_sp_model, capsys):
    from zhllama.tokenizer.hf import write_hf_tokenizer

    other = write_hf_tokenizer(mistral_sp_model, tmp_path / "mistral_tok")
    code, _, err = run_cli(["train", "pt", "--model", str(tiny_model_dir), "--tokenizer", str(other),
                            "--train-files", str(pt_corpus), "--output-dir", str(tmp_path / "o")], capsys)
    assert code == 2 and "does not extend the model's tokenizer" in err and "zhllama tokenizer merge" in err
    assert not (tmp_path / "o").exists()


def test_merge_cli_errors(tmp_path, tiny_model_dir, capsys):
    code, _, err = run_cli(["merge", "--base", str(tiny_model_dir), "--lora", str(tmp_path), "--out",
                            str(tmp_path / "m")], capsys)
    assert code == 2 and "not a LoRA adapter" in err


def test_misspelt_template_fails_before_any_model_is_loaded(tmp_path, tiny_model_dir, sft_data, monkeypatch, capsys):
    from transformers import AutoModelForCausalLM

    def no_loading(*args, **kwargs):
        raise AssertionError("a model was loaded before the template was checked")

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", no_loading)
    code, out, err = run_cli(["train", "sft", "--model", str(tiny_model_dir), "--train-files", str(sft_data),
                              "--output-dir", str(tmp_path / "o"), "--template", "alpacca"], capsys)
    assert code == 2 and "unknown template 'alpacca'" in err and "alpaca" in err.split("unknown template")[1]
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()

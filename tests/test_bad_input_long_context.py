"""Bad long-context input: one `zhllama: error:` line naming the option, exit 2, before any weights are read."""

from __future__ import annotations

import pytest

from zhllama.cli import main


def _cases(model: str, text: str, out: str) -> dict[str, tuple[list[str], str]]:
    train = ["train", "pt", "--model", model, "--train-files", text, "--output-dir", out, "--max-steps", "1"]
    return {
        "train pt --rope-scaling unknown kind": (train + ["--rope-scaling", "cubic:2"],
                                                 "--rope-scaling 'cubic:2': unknown kind 'cubic'"),
        "train pt --rope-scaling ntk (inference only)": (train + ["--rope-scaling", "ntk:2"], "unknown kind 'ntk'"),
        "train pt --rope-scaling factor 1": (train + ["--rope-scaling", "linear:1"], "the factor must be above 1"),
        "train sft --rope-scaling factor below 1": (["train", "sft"] + train[2:] + ["--rope-scaling", "yarn:0.5"],
                                                    "--rope-scaling 'yarn:0.5': the factor must be above 1"),
        "train pt --rope-scaling not a number": (train + ["--rope-scaling", "yarn:x"], "the factor must be a number"),
        "eval ppl --rope-scaling factor 0": (["eval", "ppl", "--model", model, "--text", text, "--rope-scaling",
                                              "linear:0"], "--rope-scaling 'linear:0': the factor must be above 1"),
        "eval passkey --rope-scaling unknown kind": (["eval", "passkey", "--model", model, "--out", out,
                                                      "--rope-scaling", "rope:2"], "unknown kind 'rope'"),
        "eval passkey length beyond the context": (["eval", "passkey", "--model", model, "--out", out, "--lengths",
                                                    "600"], "--lengths 600 is beyond what the model can take: 512"),
        "eval passkey length beyond the scaled context": (["eval", "passkey", "--model", model, "--out", out,
                                                           "--lengths", "2000", "--rope-scaling", "yarn:2"],
                                                          "--lengths 2000 is beyond what the model can take: 1024"),
        "eval passkey depth above 1": (["eval", "passkey", "--model", model, "--out", out, "--depths", "1.5"],
                                       "--depths 1.5 is not between 0 and 1"),
    }


CASES = list(_cases("m", "t", "o"))


@pytest.mark.parametrize("name", CASES)
def test_bad_long_context_input_is_refused_before_loading(name, tiny_model_dir, tmp_path, capsys, monkeypatch):
    import zhllama.model.load as load

    def no_weights(*args, **kwargs):
        raise AssertionError("weights were loaded before the bad input was refused")

    monkeypatch.setattr(load, "load_causal_lm", no_weights)
    text = tmp_path / "zh.txt"
    text.write_text("北京是中国的首都。\n" * 20, encoding="utf-8")
    argv, fragment = _cases(str(tiny_model_dir), str(text), str(tmp_path / "out"))[name]
    code = main(argv)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("zhllama: error:")]
    assert code == 2 and len(lines) == 1 and fragment in lines[0], lines
    assert not (tmp_path / "out").exists()

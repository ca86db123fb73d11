import json
import math

import pytest
import torch

from zhllama.cli import main
from zhllama.eval.ppl import perplexity, score_ids, text_ids, windows

TEXT = "在农业生产中，土地是最主要的基本生产资料。The quick brown fox jumps over the lazy dog."


def direct_nll(model, ids: list[int]) -> float:
    """Summed NLL of ids[1:] in one forward pass over the whole sequence."""
    x = torch.tensor([ids])
    with torch.inference_mode():
        logp = torch.log_softmax(model(input_ids=x).logits[0, :-1].float(), -1)
    return -float(logp.gather(1, x[0, 1:].view(-1, 1)).sum())


@pytest.mark.parametrize("n,context,stride", [(10, 4, 2), (10, 4, 4), (10, 4, 1), (11, 5, 3), (3, 8, 8), (2, 2, 1)])
def test_windows_score_every_token_once(n, context, stride):
    scored = []
    for begin, end, first in windows(n, context, stride):
        assert end - begin <= context and begin < first  # every scored token has some history
        scored += list(range(first, end))
    assert scored == list(range(1, n))


def test_matches_direct_computation_when_window_covers_text(tiny_model):
    model, tok = tiny_model
    ids = text_ids(tok, TEXT)
    r = perplexity(model, tok, [TEXT], context=len(ids), stride=len(ids), progress=False)
    nll = direct_nll(model, ids)
    assert r["tokens"] == len(ids) - 1
    assert r["ppl"] == pytest.approx(math.exp(nll / (len(ids) - 1)), rel=1e-5)
    assert r["bits_per_char"] == pytest.approx(nll / math.log(2) / len(TEXT), rel=1e-5)
    assert r["bits_per_byte"] == pytest.approx(nll / math.log(2) / len(TEXT.encode()), rel=1e-5)


def test_stride_does_not_matter_when_window_covers_text(tiny_model):
    model, tok = tiny_model
    n = len(text_ids(tok, TEXT))
    results = [perplexity(model, tok, [TEXT], context=n + 5, stride=s, progress=False)["ppl"] for s in (1, 7, n + 5)]
    assert results[0] == pytest.approx(results[1], rel=1e-6) and results[1] == pytest.approx(results[2], rel=1e-6)


def test_sliding_window_equals_per_token_history(tiny_model):
    """With stride 1, token t is predicted from exactly the context-1 tokens before it."""
    model, tok = tiny_model
    ids = text_ids(tok, TEXT)[:40]
    context = 8
    expected = 0.0
    for t in range(1, len(ids)):
        hist = ids[max(0, t - context + 1): t]
        with torch.inference_mode():
            logp = torch.log_softmax(model(input_ids=torch.tensor([hist])).logits[0, -1].float(), -1)
        expected -= float(logp[ids[t]])
    nll, count = score_ids(model, ids, context, 1)
    assert count == len(ids) - 1
    assert nll == pytest.approx(expected, rel=1e-5)
    # a short window really loses information compared with the full history
    assert nll != pytest.approx(direct_nll(model, ids), rel=1e-4)


def test_cli_json_and_lora(tiny_model_dir, tiny_model, tmp_path, capsys):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    text = tmp_path / "t.txt"
    text.write_text(TEXT, encoding="utf-8")
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    torch.manual_seed(0)
    peft_model = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    peft_model.save_pretrained(tmp_path / "adapter")
    peft_model.eval()

    out = tmp_path / "ppl.json"
    assert main(["eval", "ppl", "--model", str(tiny_model_dir), "--lora", str(tmp_path / "adapter"),
                 "--text", str(text), "--context", "512", "--device", "cpu", "--out", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert json.loads(out.read_text()) == printed
    ids = text_ids(tiny_model[1], TEXT)
    with_lora = direct_nll(peft_model, ids)
    without = direct_nll(tiny_model[0], ids)
    assert printed["ppl"] == pytest.approx(math.exp(with_lora / (len(ids) - 1)), rel=1e-5)
    assert abs(with_lora - without) > 1e-3
    assert printed["stride"] == 256 and printed["chars"] == len(TEXT)


def test_jsonl_scores_each_record_from_bos(tiny_model, tmp_path):
    from zhllama.eval.ppl import read_texts

    model, tok = tiny_model
    p = tmp_path / "docs.jsonl"
    p.write_text(json.dumps({"text": "土地是资料"}, ensure_ascii=False) + "\n" + json.dumps({"text": "hello world"}) + "\n",
                 encoding="utf-8")
    texts = read_texts(p)
    r = perplexity(model, tok, texts, context=64, stride=32, progress=False)
    parts = [text_ids(tok, t) for t in texts]
    assert r["texts"] == 2 and r["tokens"] == sum(len(x) - 1 for x in parts)
    assert r["nll_per_token"] * r["tokens"] == pytest.approx(sum(direct_nll(model, x) for x in parts), rel=1e-5)


@pytest.mark.parametrize("argv,needle", [
    (["--text", "missing.txt"], "text file not found"),
    (["--text", "{t}", "--stride", "0", "--context", "8"], "--stride 0"),
])
def test_bad_input_one_line(tiny_model_dir, tmp_path, capsys, argv, needle):
    t = tmp_path / "t.txt"
    t.write_text("abc", encoding="utf-8")
    argv = [a.replace("{t}", str(t)) for a in argv]
    assert main(["eval", "ppl", "--model", str(tiny_model_dir), "--device", "cpu", *argv]) == 2
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1


def test_missing_gguf_file_is_a_one_line_error(tmp_path, capsys):
    t = tmp_path / "t.txt"
    t.write_text("abc", encoding="utf-8")
    assert main(["eval", "ppl", "--model", str(tmp_path / "m.gguf"), "--text", str(t)]) == 2
    err = capsys.readouterr().err
    assert "GGUF file not found" in err and len(err.strip().splitlines()) == 1



def test_context_beyond_the_models_positions_is_refused(tiny_model_dir, tmp_path, capsys):
    text = tmp_path / "t.txt"
    text.write_text("北京是中国的首都。" * 20, encoding="utf-8")
    positions = json.loads((tiny_model_dir / "config.json").read_text())["max_position_embeddings"]
    args = ["eval", "ppl", "--model", str(tiny_model_dir), "--text", str(text), "--context", str(positions * 100)]
    assert main(args) == 2
    assert f"--context {positions * 100} is longer than the model's {positions} positions" in capsys.readouterr().err


def test_rope_scaling_in_the_config_extends_the_allowed_context():
    from types import SimpleNamespace

    from zhllama.errors import ZhllamaError
    from zhllama.eval.ppl import check_context_fits

    plain = SimpleNamespace(max_position_embeddings=256, rope_parameters={"rope_type": "default", "rope_theta": 1e4})
    scaled = SimpleNamespace(max_position_embeddings=256, rope_parameters={"rope_type": "linear", "factor": 4.0})
    check_context_fits(plain, 256)
    check_context_fits(scaled, 1024)
    with pytest.raises(ZhllamaError, match="longer than the model's 256 positions"):
        check_context_fits(plain, 257)
    with pytest.raises(ZhllamaError, match="longer than the model's 1024 positions"):
        check_context_fits(scaled, 1025)

"""--quantize and --attn: one-line errors before any loading, and (where bitsandbytes is installed) 8-bit/4-bit models on CPU."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest
import torch

from zhllama.errors import ZhllamaError
from zhllama.model.load import load_model
from zhllama.model.quantize import check_attn

HAS_BNB = importlib.util.find_spec("bitsandbytes") is not None
needs_bnb = pytest.mark.skipif(not HAS_BNB, reason="bitsandbytes is not installed (make test-engines runs this)")


@pytest.mark.skipif(HAS_BNB, reason="bitsandbytes is installed")
def test_quantize_without_bitsandbytes_is_a_one_line_error(tmp_path, tiny_model_dir):
    prompts = tmp_path / "p.txt"
    prompts.write_text("你好\n", encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "zhllama", "generate", "--model", str(tiny_model_dir), "--input",
                           str(prompts), "--output", str(tmp_path / "o.jsonl"), "--quantize", "4bit"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("zhllama: error: --quantize 4bit needs bitsandbytes")
    assert not (tmp_path / "o.jsonl").exists()


def test_flash_attention_without_cuda_names_the_option(tiny_model_dir):
    with pytest.raises(ZhllamaError, match="--attn flash_attention_2 needs a CUDA GPU"):
        load_model(tiny_model_dir, device="cpu", attn="flash_attention_2")
    check_attn("sdpa", "cpu")  # the others need nothing


def test_eager_attention_is_used_and_agrees_with_sdpa(tiny_model_dir):
    ids = torch.tensor([[1, 20, 30, 40, 50]])
    eager, _ = load_model(tiny_model_dir, device="cpu", attn="eager")
    sdpa, _ = load_model(tiny_model_dir, device="cpu", attn="sdpa")
    assert eager.config._attn_implementation == "eager" and sdpa.config._attn_implementation == "sdpa"
    with torch.no_grad():
        torch.testing.assert_close(eager(ids).logits, sdpa(ids).logits, atol=1e-4, rtol=1e-4)


@needs_bnb
@pytest.mark.parametrize("bits", ["8bit", "4bit"])
def test_quantized_model_loads_on_cpu_close_to_full_precision(bits, tiny_model_dir):
    import bitsandbytes as bnb

    ids = torch.tensor([[1, 20, 30, 40, 50, 60]])
    full, _ = load_model(tiny_model_dir, device="cpu")
    quant, _ = load_model(tiny_model_dir, device="cpu", quantize=bits)
    kind = bnb.nn.Linear4bit if bits == "4bit" else bnb.nn.Linear8bitLt
    assert isinstance(quant.model.layers[0].self_attn.q_proj, kind)
    assert not isinstance(quant.lm_head, (bnb.nn.Linear4bit, bnb.nn.Linear8bitLt))  # the head stays full precision
    with torch.no_grad():
        a, b = full(ids).logits.flatten(), quant(ids).logits.flatten().float()
    assert torch.nn.functional.cosine_similarity(a, b, dim=0) > 0.95
    assert not torch.equal(a, b)  # really quantized

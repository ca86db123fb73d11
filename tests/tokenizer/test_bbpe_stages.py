"""Every stage after `tokenizer merge` accepts a Chinese-extended byte-level BPE folder (issue 24, item 3).

A tiny Llama model on the in-process Llama-3-style base (tests/bbpe_fixtures.py, English only) goes
init -> resize to the base extended with ``tiny_sp_model``'s Chinese pieces -> train pt (Chinese text)
-> merge -> train sft (LoRA) -> merge -> train dpo -> merge -> generate, Engine chat, serve, eval ppl,
tokenizer stats.
Each stage's output folder must tokenize exactly as the extended tokenizer does, Chinese must use the
new ids, and the resized rows of new tokens must be the mean of their old segmentation's rows.
"""

from __future__ import annotations

import json

import pytest
from tokenizers import Tokenizer

from zhllama.cli import main

MESSAGES = [{"role": "user", "content": "你好，请介绍一下北京。"}, {"role": "assistant", "content": "北京是中国的首都。"},
            {"role": "user", "content": "经济发展 and the economy"}]
TRAIN = ["--max-steps", "2", "--batch-size", "2", "--lora-rank", "4", "--logging-steps", "1", "--validation-split", "0",
         "--learning-rate", "1e-2", "--save-steps", "1000"]


def _ids(folder, texts):
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    return [e.ids for e in tok.encode_batch(texts)]


def _assert_tokenizes_as(folder, ext, texts):
    """The folder's tokenizer (zhllama's loader and plain AutoTokenizer) gives the extended tokenizer's ids."""
    from transformers import AutoTokenizer

    from zhllama.tokenizer.load import load_tokenizer

    want = _ids(ext, texts)
    assert _ids(folder, texts) == want
    assert load_tokenizer(folder)(texts)["input_ids"] == want
    assert AutoTokenizer.from_pretrained(str(folder))(texts)["input_ids"] == want


@pytest.fixture(scope="module")
def texts(zh_lines, en_lines):
    return list(zh_lines[2000:2040]) + list(en_lines[:10]) + ["中文😀English", "价格：¥100，约$14。", "经济发展"]


@pytest.fixture(scope="module")
def chain(tmp_path_factory, tiny_bbpe_dir, tiny_sp_model, zh_lines):
    """Every stage run once, in order; the test functions check each output."""
    from zhllama.tokenizer.backend import merge_tokenizers

    d = tmp_path_factory.mktemp("bbpe_stages")
    ext = d / "ext"
    merge_tokenizers(tiny_bbpe_dir, [tiny_sp_model], ext)
    base = d / "base"
    assert main(["model", "init", "--tokenizer", str(tiny_bbpe_dir), "--out", str(base), "--hidden-size", "64",
                 "--layers", "2", "--heads", "4", "--kv-heads", "2", "--intermediate-size", "128",
                 "--max-position", "256", "--seed", "0"]) == 0
    resized = d / "resized"
    assert main(["model", "resize", "--model", str(base), "--tokenizer", str(ext), "--out", str(resized)]) == 0

    corpus = d / "zh.txt"
    corpus.write_text("\n".join(zh_lines[:40]) + "\n", encoding="utf-8")
    cache = ["--cache-dir", str(d / "cache")]
    assert main(["train", "pt", "--model", str(resized), "--train-files", str(corpus), "--output-dir", str(d / "pt"),
                 "--block-size", "64", "--modules-to-save", "embed_tokens", "lm_head", *TRAIN, *cache]) == 0
    pt = d / "pt-merged"
    assert main(["merge", "--base", str(resized), "--lora", str(d / "pt" / "final"), "--out", str(pt)]) == 0

    sft_file = d / "sft.json"
    records = [{"instruction": f"问题 {i}：{zh_lines[i][:12]}", "input": "", "output": zh_lines[i + 1][:30]}
               for i in range(16)]
    sft_file.write_text(json.dumps(records, ensure_ascii=False), encoding="utf-8")
    assert main(["train", "sft", "--model", str(pt), "--train-files", str(sft_file), "--output-dir", str(d / "sft"),
                 "--template", "alpaca", "--max-length", "96", *TRAIN, *cache]) == 0
    sft = d / "sft-merged"
    assert main(["merge", "--base", str(pt), "--lora", str(d / "sft" / "final"), "--out", str(sft)]) == 0

    pairs = d / "pairs.jsonl"
    rows = [{"instruction": "请写一句话。", "input": zh_lines[i][:6], "chosen": zh_lines[i + 100][:24],
             "rejected": "An English sentence instead."} for i in range(8)]
    pairs.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    assert main(["train", "dpo", "--model", str(sft), "--train-files", str(pairs), "--output-dir", str(d / "dpo"),
                 "--template", "alpaca", "--max-length", "96", *TRAIN, *cache]) == 0
    dpo = d / "dpo-merged"
    assert main(["merge", "--base", str(sft), "--lora", str(d / "dpo" / "final"), "--out", str(dpo)]) == 0
    return {"dir": d, "ext": ext, "base": base, "resized": resized, "pt": pt, "sft": sft, "dpo": dpo}


def test_chinese_uses_the_new_ids_and_the_model_covers_them(chain, tiny_bbpe_dir, zh_lines):
    from transformers import AutoConfig

    n_base = Tokenizer.from_file(str(tiny_bbpe_dir / "tokenizer.json")).get_vocab_size()
    assert n_base == 858
    ids = [i for row in _ids(chain["ext"], zh_lines[2000:2100]) for i in row]
    new = [i for i in ids if i >= n_base]
    assert len(new) > len(ids) // 3  # Chinese is mostly new tokens now
    n_ext = Tokenizer.from_file(str(chain["ext"] / "tokenizer.json")).get_vocab_size()
    assert n_ext > n_base + 100
    for stage in ("resized", "pt", "sft", "dpo"):
        assert AutoConfig.from_pretrained(str(chain[stage])).vocab_size >= n_ext > max(ids), stage


def test_resized_rows_are_the_mean_of_the_old_segmentation(chain, tiny_bbpe_dir):
    import torch
    from transformers import AutoModelForCausalLM

    from zhllama.model.resize import base_piece_ids
    from zhllama.tokenizer import bbpe
    from zhllama.tokenizer.load import load_tokenizer

    old, new = (AutoModelForCausalLM.from_pretrained(str(chain[k])) for k in ("base", "resized"))
    base_tok, ext_tok = load_tokenizer(tiny_bbpe_dir), load_tokenizer(chain["ext"])
    n_old = old.get_input_embeddings().weight.shape[0]
    emb, head = new.get_input_embeddings().weight.detach(), new.get_output_embeddings().weight.detach()
    old_emb, old_head = old.get_input_embeddings().weight.detach(), old.get_output_embeddings().weight.detach()
    assert emb.shape[0] == len(ext_tok) and torch.equal(emb[:n_old], old_emb) and torch.equal(head[:n_old], old_head)
    checked = 0
    for idx in range(n_old, len(ext_tok)):
        token = ext_tok.convert_ids_to_tokens(idx)
        parts = base_piece_ids(token, ext_tok, base_tok)
        assert "".join(base_tok.convert_ids_to_tokens(parts)) == token  # the same bytes, split by the base
        text = bbpe.token_text(token)  # None for a character fragment (a byte chain link)
        if text is not None:  # the old segmentation is the base tokenizer's ids of the token's text
            assert parts == base_tok(text, add_special_tokens=False)["input_ids"], text
        assert len(parts) >= 2 and max(parts) < n_old
        torch.testing.assert_close(emb[idx], old_emb[parts].mean(0))
        torch.testing.assert_close(head[idx], old_head[parts].mean(0))
        checked += 1
    assert checked > 100


@pytest.mark.parametrize("stage", ["resized", "pt", "sft", "dpo"])
def test_every_stage_folder_tokenizes_as_the_extended_tokenizer(chain, stage, texts):
    _assert_tokenizes_as(chain[stage], chain["ext"], texts)


def test_training_changed_the_new_rows(chain):
    """pt trained the new Chinese rows (--modules-to-save embed_tokens lm_head, as after a separate resize),
    and merge carried them into the folder."""
    import torch
    from transformers import AutoModelForCausalLM

    resized, pt = (AutoModelForCausalLM.from_pretrained(str(chain[k])) for k in ("resized", "pt"))
    n_old = AutoModelForCausalLM.from_pretrained(str(chain["base"])).get_input_embeddings().weight.shape[0]
    a, b = resized.get_input_embeddings().weight[n_old:], pt.get_input_embeddings().weight[n_old:]
    assert not torch.equal(a, b)


def test_generate_and_engine_chat(chain, tmp_path):
    from zhllama.infer.engine import Engine
    from zhllama.infer.sampling import SamplingParams

    engine = Engine.load(chain["dpo"], device="cpu")
    assert engine.text_prompt("经济发展") == _ids(chain["ext"], ["经济发展"])[0]
    prompt = engine.chat_prompt(MESSAGES, 8)
    (done,) = engine.generate([prompt], SamplingParams(max_new_tokens=8, temperature=1.0, seed=0))
    assert done.completion_tokens > 0 and done.text
    # the bytes of a character cut off by the length limit are dropped (infer/stream.py), not shown as U+FFFD
    assert done.text == engine.tokenizer.decode(done.token_ids, skip_special_tokens=True).rstrip("\ufffd")

    inp, out = tmp_path / "in.txt", tmp_path / "out.jsonl"
    inp.write_text("北京是\n中国的首都\n", encoding="utf-8")
    assert main(["generate", "--model", str(chain["dpo"]), "--input", str(inp), "--output", str(out),
                 "--max-new-tokens", "6", "--temperature", "1.0", "--device", "cpu"]) == 0
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["prompt"] for r in rows] == ["北京是", "中国的首都"] and all(r["output"] for r in rows)


def test_serve_counts_the_saved_tokenizers_prompt_ids(chain):
    from fastapi.testclient import TestClient
    from transformers import AutoTokenizer

    from zhllama.infer.engine import Engine
    from zhllama.serve.config import ApiSettings
    from zhllama.serve.openai import create_app

    engine = Engine.load(chain["dpo"], device="cpu")
    settings = ApiSettings(model_name="m", max_request_bytes=50_000, max_prompt_tokens=400, max_tokens=4)
    with TestClient(create_app(engine, settings)) as client:
        r = client.post("/v1/chat/completions", json={"model": "m", "messages": MESSAGES, "max_tokens": 4,
                                                      "temperature": 0})
    assert r.status_code == 200, r.text
    saved = AutoTokenizer.from_pretrained(str(chain["dpo"]))
    expected = saved.apply_chat_template(MESSAGES, add_generation_prompt=True, tokenize=True, return_dict=False)
    assert r.json()["usage"]["prompt_tokens"] == len(expected)
    assert engine.chat_prompt(MESSAGES, 4) == list(expected)
    assert any(i >= Tokenizer.from_file(str(chain["base"] / "tokenizer.json")).get_vocab_size() for i in expected)


def test_eval_ppl_counts_the_extended_tokens(chain, zh_lines, capsys):
    text = chain["dir"] / "heldout.txt"
    doc = "\n".join(zh_lines[2100:2110])
    text.write_text(doc, encoding="utf-8")
    assert main(["eval", "ppl", "--model", str(chain["dpo"]), "--text", str(text), "--context", "128",
                 "--device", "cpu"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["tokens"] == len(_ids(chain["ext"], [doc])[0]) - 1
    assert printed["ppl"] > 1.0 and printed["chars"] == len(doc)


def test_tokenizer_stats_compares_base_extension_and_model_folder(chain, tiny_bbpe_dir, zh_lines, capsys):
    text = chain["dir"] / "stats.txt"
    docs = list(zh_lines[2000:2100])
    text.write_text("\n".join(docs) + "\n", encoding="utf-8")
    assert main(["tokenizer", "stats", "--tokenizer", str(tiny_bbpe_dir), "--tokenizer", str(chain["ext"]),
                 "--tokenizer", str(chain["dpo"]), "--text", str(text), "--json"]) == 0
    base, ext, model = json.loads(capsys.readouterr().out)
    assert ext["chinese_chars_per_token"] > 1.5 * base["chinese_chars_per_token"]  # 0.54 vs 0.29 measured
    tok = Tokenizer.from_file(str(chain["ext"] / "tokenizer.json"))
    assert model["tokens"] == ext["tokens"] == sum(len(e.ids) for e in tok.encode_batch(docs, add_special_tokens=False))
    assert model["vocab_size"] == ext["vocab_size"] == tok.get_vocab_size() > base["vocab_size"]
    assert ext["roundtrip_rate"] == model["roundtrip_rate"] == 1.0

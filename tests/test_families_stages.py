"""Every stage on every family (issue 25, item 3): resize, train pt (LoRA + embeddings, and full), sft with
the family's LoRA targets, merge, rm, dpo, ppo, eval ppl and eval reward, on a tiny llama, qwen2 and qwen3.

The base is the session's tiny model of the family (``family_model_dirs``) with its biases and norms set
to random values, so that a stage which dropped, reset or re-initialised a family's own tensors (Qwen2's
q/k/v biases, Qwen3's q/k norms) changes numbers the tests compare.  Each stage runs one to four steps;
what is asserted is what breaks when the stage mishandles the family: the saved ``model_type`` and class,
those tensors kept or trained as the stage should, the rows a resize adds, LoRA on exactly the family's
projections, merged weights that give the PEFT model's logits, finite losses that fall where a few steps
can show it.
"""

from __future__ import annotations

import json
import math
import shutil

import pytest
import torch

from family_fixtures import jitter_biases_and_norms

from zhllama.cli import main
from zhllama.model.families import FAMILIES

# a family's tensors beyond the LLaMA block (names inside a decoder layer)
OWN_TENSORS = {"llama": (), "qwen2": ("self_attn.q_proj.bias", "self_attn.k_proj.bias", "self_attn.v_proj.bias"),
               "qwen3": ("self_attn.q_norm.weight", "self_attn.k_norm.weight")}
END_OF_TURN = {"llama": "<|eot_id|>", "qwen2": "<|im_end|>", "qwen3": "<|im_end|>"}
DEFAULT_TEMPLATE = {"llama": "llama3", "qwen2": "qwen", "qwen3": "qwen"}  # llama: on a Llama-3 vocabulary
LAYERS = 2
RUN = ["--batch-size", "2", "--logging-steps", "1", "--save-steps", "1000", "--lr-scheduler", "constant",
       "--warmup-ratio", "0", "--seed", "0"]  # every step at the full learning rate
STEPS = [*RUN, "--validation-split", "0"]
LORA = ["--lora-rank", "4", "--lora-alpha", "8", "--lora-dropout", "0"]
TEXT = "北京是中国的首都，经济发展很快。The capital of China is Beijing."


def weights(folder) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    out = {}
    for f in sorted(folder.glob("*.safetensors")):
        out.update(load_file(str(f)))
    return out


def own(state: dict, family: str) -> dict[str, torch.Tensor]:
    """The family's own tensors of every layer; each must be in ``state``."""
    names = [f"model.layers.{i}.{n}" for i in range(LAYERS) for n in OWN_TENSORS[family]]
    missing = [n for n in names if n not in state]
    assert not missing, f"{family}: saved without {missing}"
    return {n: state[n] for n in names}


def assert_equal_tensors(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def config(folder) -> dict:
    return json.loads((folder / "config.json").read_text())


def losses(run) -> list[float]:
    return [loss for _, loss in json.loads((run / "metrics.json").read_text())["loss_curve"]["train"]]


def text_ids(folder, text=TEXT) -> list[int]:
    from zhllama.eval.ppl import text_ids as ids
    from zhllama.tokenizer.load import load_tokenizer

    return ids(load_tokenizer(folder), text)


def logits(model, ids):
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids])).logits


def assert_merged_equals_peft(base, adapter, merged) -> None:
    """The merged folder gives the logits of plain peft's model: base + adapter."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    ids = text_ids(merged)
    peft = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32), str(adapter))
    plain = AutoModelForCausalLM.from_pretrained(str(merged), dtype=torch.float32)
    want = logits(peft.eval(), ids)
    torch.testing.assert_close(logits(plain.eval(), ids), want, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(logits(AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32), ids), want,
                              atol=1e-4)  # the adapter did something


def assert_trained_adapter(adapter, family) -> None:
    """A LoRA adapter on every projection of the family, with trained (non-zero) B matrices."""
    from safetensors.torch import load_file

    targets = set(json.loads((adapter / "adapter_config.json").read_text())["target_modules"])
    assert targets == set(FAMILIES[family].lora_targets)
    state = load_file(str(adapter / "adapter_model.safetensors"))
    b = {k: v for k, v in state.items() if "lora_B" in k}
    assert len(b) == LAYERS * len(targets)
    assert any(v.abs().sum() > 0 for v in b.values())


@pytest.fixture(scope="module", params=["llama", "qwen2", "qwen3"])
def family(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def work(family, tmp_path_factory):
    return tmp_path_factory.mktemp(f"stages-{family}")


@pytest.fixture(scope="module")
def base(family, family_model_dirs, work):
    """The family's tiny model with random biases and norms (a fresh model has zeros and ones there), ending
    on two EOS ids as Llama-3 and Qwen2 Instruct folders do (end of text, end of turn)."""
    from transformers import AutoModelForCausalLM

    from zhllama.tokenizer.load import load_tokenizer

    out = work / "base"
    shutil.copytree(family_model_dirs[family], out)
    model = AutoModelForCausalLM.from_pretrained(str(out), dtype=torch.float32)
    jitter_biases_and_norms(model, 0.1)
    tok = load_tokenizer(out)
    model.generation_config.eos_token_id = [tok.eos_token_id, tok.convert_tokens_to_ids(END_OF_TURN[family])]
    model.save_pretrained(out)
    return out


def generation_eos(folder):
    return json.loads((folder / "generation_config.json").read_text())["eos_token_id"]


@pytest.fixture(scope="module")
def corpus(work, builtin_text):
    p = work / "zh.txt"
    p.write_text("\n".join([t for t in builtin_text["zh"][:6] if t.strip()] * 6) + "\n", encoding="utf-8")
    return p


@pytest.fixture(scope="module")
def extended(base, tiny_sp_model, work):
    """The family's tokenizer extended with the Chinese pieces of a SentencePiece model (`tokenizer merge`)."""
    from zhllama.tokenizer.backend import merge_tokenizers

    merge_tokenizers(base, [tiny_sp_model], work / "ext")
    return work / "ext"


@pytest.fixture(scope="module")
def resized(base, extended, work):
    out = work / "resized"
    assert main(["model", "resize", "--model", str(base), "--tokenizer", str(extended), "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def pt_lora(resized, corpus, work):
    """train pt with LoRA and trainable embeddings (the new rows), merged."""
    run = work / "pt"
    assert main(["train", "pt", "--model", str(resized), "--train-files", str(corpus), "--output-dir", str(run),
                 "--block-size", "32", "--max-steps", "4", "--learning-rate", "1e-2", "--modules-to-save", "embed_tokens",
                 "lm_head", *LORA, *STEPS, "--cache-dir", str(work / "cache")]) == 0
    merged = work / "pt-merged"
    assert main(["merge", "--base", str(resized), "--lora", str(run / "final"), "--out", str(merged)]) == 0
    return run, merged


@pytest.fixture(scope="module")
def sft(pt_lora, work):
    """train sft with LoRA (the family's targets, its default template), merged."""
    records = [{"instruction": f"问题 {i}：北京在哪里？", "input": "", "output": f"北京在中国北方。{i}"} for i in range(8)]
    data = work / "sft.json"
    data.write_text(json.dumps(records, ensure_ascii=False), encoding="utf-8")
    run, merged = work / "sft", work / "sft-merged"
    assert main(["train", "sft", "--model", str(pt_lora[1]), "--train-files", str(data), "--output-dir", str(run),
                 "--max-length", "64", "--max-steps", "2", "--learning-rate", "1e-2", *LORA, *STEPS,
                 "--cache-dir", str(work / "cache")]) == 0
    assert main(["merge", "--base", str(pt_lora[1]), "--lora", str(run / "final"), "--out", str(merged)]) == 0
    return run, merged


@pytest.fixture(scope="module")
def pairs(work, builtin_text):
    zh = [t[:20] for t in builtin_text["zh"] if len(t) >= 12]
    en = [t[:40] for t in builtin_text["en"] if len(t) >= 20 and t.isascii()]
    rows = [{"instruction": "请写一句话。", "input": zh[i][:6], "chosen": zh[i + 100], "rejected": en[i]} for i in range(8)]
    p = work / "pairs.jsonl"
    p.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return p


def align(stage, model, pairs, run, *extra):
    assert main(["train", stage, "--model", str(model), "--train-files", str(pairs), "--output-dir", str(run),
                 "--learning-rate", "5e-3", *LORA, *RUN, *extra]) == 0
    return run / "final"


@pytest.fixture(scope="module")
def rm(sft, pairs, work):
    return align("rm", sft[1], pairs, work / "rm", "--max-steps", "2", "--max-length", "64", "--cache-dir",
                 str(work / "cache"))


# --- the tests, stage by stage ----------------------------------------------------------------------------


def test_resize_adds_initialised_rows_and_keeps_the_familys_tensors(family, base, extended, resized):
    from zhllama.model.resize import base_piece_ids
    from zhllama.tokenizer.load import load_tokenizer

    old, new = weights(base), weights(resized)
    base_tok, ext_tok = load_tokenizer(base), load_tokenizer(extended)
    n_old = old["model.embed_tokens.weight"].shape[0]
    emb, head = new["model.embed_tokens.weight"], new["lm_head.weight"]
    assert emb.shape[0] == head.shape[0] == len(ext_tok) > n_old + 20
    assert config(resized)["model_type"] == family and config(resized)["vocab_size"] == len(ext_tok)
    for idx in range(n_old, len(ext_tok), 7):  # new rows: the mean of the rows of the base's pieces
        parts = base_piece_ids(ext_tok.convert_ids_to_tokens(idx), ext_tok, base_tok)
        assert len(parts) >= 2
        torch.testing.assert_close(emb[idx], old["model.embed_tokens.weight"][parts].mean(0))
        torch.testing.assert_close(head[idx], old["lm_head.weight"][parts].mean(0))
    assert torch.equal(emb[:n_old], old["model.embed_tokens.weight"])
    rest = {k: v for k, v in old.items() if k not in ("model.embed_tokens.weight", "lm_head.weight")}
    assert_equal_tensors({k: new[k] for k in rest}, rest)  # every other tensor as it was
    own(new, family)


def test_pt_lora_with_embeddings_trains_the_new_rows_and_merges_to_the_peft_logits(family, base, resized, pt_lora):
    run, merged = pt_lora
    curve = losses(run)
    assert all(math.isfinite(x) for x in curve) and curve[-1] < curve[0], curve
    assert_trained_adapter(run / "final", family)
    assert_merged_equals_peft(resized, run / "final", merged)
    before, after = weights(resized), weights(merged)
    n_old = weights(base)["model.embed_tokens.weight"].shape[0]
    for name in ("model.embed_tokens.weight", "lm_head.weight"):  # the new rows were trained and merged
        assert after[name].shape == before[name].shape and not torch.equal(after[name][n_old:], before[name][n_old:])
    assert_equal_tensors(own(after, family), own(before, family))  # LoRA leaves biases and norms alone
    assert config(merged)["model_type"] == family


def test_pt_full_trains_the_familys_own_tensors(family, base, corpus, work):
    run = work / "pt-full"
    assert main(["train", "pt", "--model", str(base), "--train-files", str(corpus), "--output-dir", str(run), "--full",
                 "--block-size", "32", "--max-steps", "3", "--learning-rate", "5e-3", *STEPS,
                 "--cache-dir", str(work / "cache")]) == 0
    curve = losses(run)
    assert all(math.isfinite(x) for x in curve) and curve[-1] < curve[0], curve
    final = run / "final"
    assert config(final)["model_type"] == family and config(final)["architectures"] == [FAMILIES[family].model_class]
    before, after = own(weights(base), family), own(weights(final), family)
    for name in before:
        assert not torch.equal(before[name], after[name]), name


def test_sft_lora_adapts_exactly_the_familys_projections_and_merges_to_the_peft_logits(family, base, pt_lora, sft):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    run, merged = sft
    assert all(math.isfinite(x) for x in losses(run))
    adapter = run / "final"
    assert_trained_adapter(adapter, family)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(pt_lora[1])), str(adapter))
    adapted = [name for name, m in model.named_modules() if hasattr(m, "lora_A") and isinstance(m.base_layer, torch.nn.Linear)]
    assert {n.rsplit(".", 1)[-1] for n in adapted} == set(FAMILIES[family].lora_targets)
    assert len(adapted) == LAYERS * len(FAMILIES[family].lora_targets)
    assert_merged_equals_peft(pt_lora[1], adapter, merged)
    assert json.loads((merged / "zhllama.json").read_text())["template"] == DEFAULT_TEMPLATE[family]
    assert generation_eos(merged) == generation_eos(base)  # both ends still stop generation


def test_rm_is_the_familys_sequence_classifier_and_eval_reward_scores_it(family, sft, rm, pairs, capsys):
    cfg = config(rm)
    stem = FAMILIES[family].model_class.removesuffix("ForCausalLM")
    assert cfg["architectures"] == [f"{stem}ForSequenceClassification"] and cfg["model_type"] == family
    assert len(cfg["id2label"]) == 1
    policy, reward = weights(sft[1]), weights(rm)
    assert reward["score.weight"].shape == (1, policy["model.embed_tokens.weight"].shape[1])
    assert_equal_tensors(own(reward, family), own(policy, family))  # LoRA merged in: biases and norms as they were
    assert not torch.equal(reward["model.layers.0.self_attn.q_proj.weight"], policy["model.layers.0.self_attn.q_proj.weight"])
    capsys.readouterr()
    assert main(["eval", "reward", "--model", str(rm), "--data", str(pairs), "--device", "cpu"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["pairs"] == 8 and 0.0 <= result["accuracy"] <= 1.0 and math.isfinite(result["mean_margin"])


def test_dpo_trains_a_lora_adapter_with_finite_rewards(family, sft, pairs, work):
    final = align("dpo", sft[1], pairs, work / "dpo", "--max-steps", "2", "--max-length", "64", "--cache-dir",
                  str(work / "cache"))
    assert_trained_adapter(final, family)
    history = json.loads((work / "dpo" / "metrics.json").read_text())["log_history"]
    assert all(math.isfinite(h["loss"]) for h in history if "loss" in h)
    assert any("rewards/margins" in h for h in history)


def test_ppo_samples_scores_with_the_reward_model_and_trains(family, sft, rm, pairs, work):
    final = align("ppo", sft[1], pairs, work / "ppo", "--max-steps", "1", "--reward-model", str(rm),
                  "--num-generations", "2", "--max-new-tokens", "4")
    assert_trained_adapter(final, family)
    assert json.loads((final / "zhllama.json").read_text())["stage"] == "ppo"
    history = json.loads((work / "ppo" / "metrics.json").read_text())["log_history"]
    rewards = [h[k] for h in history for k in h if k.startswith("reward")]
    assert rewards and all(math.isfinite(r) for r in rewards)


def test_eval_ppl_equals_the_models_own_nll(family, sft, work, capsys):
    from transformers import AutoModelForCausalLM

    merged = sft[1]
    text = work / "heldout.txt"
    text.write_text(TEXT, encoding="utf-8")
    capsys.readouterr()
    assert main(["eval", "ppl", "--model", str(merged), "--text", str(text), "--context", "128", "--device", "cpu"]) == 0
    result = json.loads(capsys.readouterr().out)
    ids = text_ids(merged)
    assert result["tokens"] == len(ids) - 1 < 128
    x = torch.tensor([ids])
    with torch.no_grad():
        logp = torch.log_softmax(AutoModelForCausalLM.from_pretrained(str(merged)).eval()(input_ids=x).logits[0, :-1], -1)
    nll = -float(logp.gather(1, x[0, 1:].view(-1, 1)).sum())
    assert result["ppl"] == pytest.approx(math.exp(nll / (len(ids) - 1)), rel=1e-4)


def test_generate_with_the_adapter_equals_the_merged_model(family, pt_lora, sft, work):
    """`generate --lora` (the sft adapter on its base, the family's template from the adapter) answers the chats
    greedily as the merged folder does."""
    prompts = work / "chats.jsonl"
    chats = [[{"role": "user", "content": "北京在哪里？"}], [{"role": "system", "content": "简短回答。"},
                                                              {"role": "user", "content": "问题 3：北京在哪里？"}]]
    prompts.write_text("".join(json.dumps({"messages": m}, ensure_ascii=False) + "\n" for m in chats), encoding="utf-8")
    rows = []
    for name, model in (("adapter", ["--model", str(pt_lora[1]), "--lora", str(sft[0] / "final")]),
                        ("merged", ["--model", str(sft[1])])):
        out = work / f"generated-{name}.jsonl"
        assert main(["generate", *model, "--input", str(prompts), "--output", str(out), "--max-new-tokens", "6",
                     "--temperature", "0", "--device", "cpu"]) == 0
        rows.append([json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()])
    adapter, merged = rows
    assert len(merged) == 2 and all(r["completion_tokens"] > 0 for r in merged)
    assert [(r["output"], r["prompt_tokens"]) for r in adapter] == [(r["output"], r["prompt_tokens"]) for r in merged]


def test_pt_initialises_and_trains_new_tokens_that_fit_in_a_padded_vocabulary(family_model_dirs, tiny_sp_model,
                                                                              builtin_text, tmp_path):
    """Qwen2 and Qwen3 pad their embeddings (151,936 rows for 151,665 tokens).  A few new tokens fit in the spare
    rows: `train pt --tokenizer` must still initialise them from their pieces and train them (LoRA saves the
    embeddings), not leave them as rows no token has trained."""
    from safetensors.torch import load_file

    from zhllama.tokenizer.backend import merge_tokenizers
    from zhllama.tokenizer.load import load_tokenizer

    padded, ext, run, corpus = tmp_path / "padded", tmp_path / "ext", tmp_path / "pt", tmp_path / "zh.txt"
    corpus.write_text("\n".join(builtin_text["zh"][:20]) + "\n", encoding="utf-8")
    base = family_model_dirs["qwen2"]
    assert main(["model", "resize", "--model", str(base), "--tokenizer", str(base), "--out", str(padded),
                 "--pad-to-multiple-of", "128"]) == 0
    n_base = len(load_tokenizer(base))
    rows = config(padded)["vocab_size"]
    merge_tokenizers(padded, [tiny_sp_model], ext, max_pieces=n_base + 8)
    assert n_base + 8 == len(load_tokenizer(ext)) < rows
    assert main(["train", "pt", "--model", str(padded), "--tokenizer", str(ext), "--train-files", str(corpus),
                 "--output-dir", str(run), "--block-size", "32", "--max-steps", "1", *LORA, *STEPS,
                 "--cache-dir", str(tmp_path / "cache")]) == 0
    vocab = json.loads((run / "metrics.json").read_text())["vocabulary"]
    assert vocab["embedding_rows"] == rows and vocab["resize"]["initialised_from_subwords"] == 8
    saved = load_file(str(run / "final" / "adapter_model.safetensors"))
    assert {"base_model.model.model.embed_tokens.weight", "base_model.model.lm_head.weight"} <= saved.keys()


def test_pt_lora_on_a_tied_model_merges_to_what_the_adapter_gives(family_model_dirs, tiny_sp_model, builtin_text,
                                                                    tmp_path):
    """The small Qwen2.5 / Qwen3 / Llama-3.2 bases tie lm_head to embed_tokens.  LoRA pre-training with the vocabulary
    extended (both embedding modules trained and saved) must merge into a folder that gives the logits of the base
    with the adapter applied, the new rows trained."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from zhllama.model.load import load_model
    from zhllama.tokenizer.backend import merge_tokenizers

    tied, ext, run, merged = (tmp_path / n for n in ("tied", "ext", "pt", "merged"))
    shutil.copytree(family_model_dirs["qwen2"], tied)
    cfg = AutoConfig.from_pretrained(str(tied))
    cfg.tie_word_embeddings = True
    model = AutoModelForCausalLM.from_pretrained(str(tied), config=cfg)
    model.tie_weights()
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight
    model.save_pretrained(tied)
    merge_tokenizers(tied, [tiny_sp_model], ext)
    corpus = tmp_path / "zh.txt"
    corpus.write_text("\n".join(builtin_text["zh"][:20]) + "\n", encoding="utf-8")
    assert main(["train", "pt", "--model", str(tied), "--tokenizer", str(ext), "--train-files", str(corpus),
                 "--output-dir", str(run), "--block-size", "32", "--max-steps", "2", "--learning-rate", "1e-2", *LORA,
                 *STEPS, "--cache-dir", str(tmp_path / "cache")]) == 0
    assert main(["merge", "--base", str(tied), "--lora", str(run / "final"), "--out", str(merged)]) == 0
    ids = text_ids(merged)
    adapted, _ = load_model(str(tied), lora=str(run / "final"), dtype="float32", device="cpu")
    plain, _ = load_model(str(merged), dtype="float32", device="cpu")
    torch.testing.assert_close(logits(plain, ids), logits(adapted, ids), atol=1e-4, rtol=1e-4)
    n_old = weights(tied)["model.embed_tokens.weight"].shape[0]
    assert max(ids) >= n_old  # the text uses new tokens

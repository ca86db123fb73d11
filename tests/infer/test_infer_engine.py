"""The generation engine against transformers' own generate, and its sampling, stops and trimming."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from zhllama.errors import ZhllamaError
from zhllama.infer.engine import Engine, SamplingParams
from zhllama.rope_scaling import RopeScaling

from infer_memorized import QUESTION, RAW_CONTINUATION, RAW_PROMPT, REPLY

GREEDY = SamplingParams(max_new_tokens=24, temperature=0.0, repetition_penalty=1.0)
TEXTS = ["Return the value of", "你好，世界", "x", "The quick brown fox jumps over the lazy dog"]


def hf_greedy(engine, prompts, max_new_tokens, penalty=1.0):
    """transformers' model.generate on the same left-padded batch."""
    width = max(len(p) for p in prompts)
    ids = torch.tensor([[0] * (width - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    out = engine.model.generate(ids, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=False,
                                repetition_penalty=penalty, pad_token_id=0)
    eos = engine.tokenizer.eos_token_id
    rows = []
    for row in out[:, width:].tolist():
        rows.append(row[:row.index(eos)] if eos in row else row)
    return rows


def test_greedy_equals_model_generate_single(tiny_engine):
    for text in TEXTS:
        prompt = tiny_engine.text_prompt(text)
        [c] = tiny_engine.generate([prompt], GREEDY)
        assert c.token_ids == hf_greedy(tiny_engine, [prompt], 24)[0]
        assert c.finish_reason == "length" and c.completion_tokens == 24 and c.prompt_tokens == len(prompt)


def test_greedy_equals_model_generate_batched_with_repetition_penalty(tiny_engine):
    prompts = [tiny_engine.text_prompt(t) for t in TEXTS]
    params = SamplingParams(max_new_tokens=16, temperature=0.0, repetition_penalty=1.3)
    ours = [c.token_ids for c in tiny_engine.generate(prompts, params)]
    assert ours == hf_greedy(tiny_engine, prompts, 16, penalty=1.3)


def test_seeded_sampling_is_reproducible(tiny_engine):
    prompts = [tiny_engine.text_prompt(t) for t in TEXTS[:2]]
    a = tiny_engine.generate(prompts, SamplingParams(max_new_tokens=20, temperature=1.0, seed=7))
    b = tiny_engine.generate(prompts, SamplingParams(max_new_tokens=20, temperature=1.0, seed=7))
    c = tiny_engine.generate(prompts, SamplingParams(max_new_tokens=20, temperature=1.0, seed=8))
    assert [x.token_ids for x in a] == [x.token_ids for x in b]
    assert [x.token_ids for x in a] != [x.token_ids for x in c]
    # a seeded request gives the same tokens alone as in a batch with another request
    [alone] = tiny_engine.generate(prompts[:1], SamplingParams(max_new_tokens=20, temperature=1.0, seed=7))
    assert alone.token_ids == a[0].token_ids


def test_per_request_params_in_one_batch(tiny_engine):
    prompts = [tiny_engine.text_prompt(t) for t in TEXTS[:3]]
    params = [GREEDY, SamplingParams(max_new_tokens=5, temperature=0.9, seed=1),
              SamplingParams(max_new_tokens=11, temperature=0.0, repetition_penalty=1.0)]
    out = tiny_engine.generate(prompts, params)
    assert [c.completion_tokens for c in out] == [24, 5, 11]
    assert out[0].token_ids == tiny_engine.generate(prompts[:1], GREEDY)[0].token_ids
    assert out[2].token_ids == out[0].token_ids[:0] + tiny_engine.generate(prompts[2:3], params[2])[0].token_ids


def test_memorized_chat_reply_and_eos(memorized_engine):
    assert memorized_engine.template.name == "alpaca"  # from the folder's zhllama.json
    prompt = memorized_engine.chat_prompt([{"role": "user", "content": QUESTION}])
    [c] = memorized_engine.generate([prompt], SamplingParams(max_new_tokens=100, temperature=0.0))
    assert c.text == REPLY
    assert c.finish_reason == "stop" and c.completion_tokens == len(c.token_ids) + 1  # + EOS


def test_stop_string_cuts_output(memorized_engine):
    prompts = [memorized_engine.chat_prompt([{"role": "user", "content": QUESTION}]),
               memorized_engine.text_prompt(RAW_PROMPT)]
    params = SamplingParams(max_new_tokens=100, temperature=0.0, stop=("麒麟", "和龙猫"))
    out = memorized_engine.generate(prompts, params)
    assert out[0].text == REPLY[:REPLY.index("麒麟")] and out[0].finish_reason == "stop"
    assert out[1].text == RAW_CONTINUATION[:RAW_CONTINUATION.index("和龙猫")] and out[1].finish_reason == "stop"


def test_stream_reports_the_same_token_counts_as_generate(memorized_engine):
    prompts = [memorized_engine.chat_prompt([{"role": "user", "content": QUESTION}]),
               memorized_engine.text_prompt(RAW_PROMPT)]
    params = [SamplingParams(max_new_tokens=100, temperature=0.0),  # ends on EOS
              SamplingParams(max_new_tokens=100, temperature=0.0, stop=("和龙猫",))]  # ends on a stop string
    expected = [c.completion_tokens for c in memorized_engine.generate(prompts, params)]
    counts: list[int] = []
    finished = {i: counts[i] for i, _, finish in memorized_engine.stream(prompts, params, token_counts=counts) if finish}
    assert [finished[0], finished[1]] == expected and all(n > 1 for n in expected)


def test_stream_whole_characters_and_no_stop_text(memorized_engine):
    prompts = [memorized_engine.chat_prompt([{"role": "user", "content": QUESTION}]),
               memorized_engine.text_prompt(RAW_PROMPT)]
    params = [SamplingParams(max_new_tokens=100, temperature=0.0),
              SamplingParams(max_new_tokens=100, temperature=0.0, stop=("鳄鱼和",))]
    deltas = {0: [], 1: []}
    finish = {}
    for i, delta, reason in memorized_engine.stream(prompts, params):
        assert "\ufffd" not in delta
        assert i not in finish, "no event after a request's final one"
        deltas[i].append(delta)
        if reason:
            finish[i] = reason
    assert "".join(deltas[0]) == REPLY and finish[0] == "stop"
    assert all(len(d) <= 2 for d in deltas[0])  # token by token, not all at the end
    assert "".join(deltas[1]) == RAW_CONTINUATION[:RAW_CONTINUATION.index("鳄鱼和")]
    assert not any("鳄" in d for d in deltas[1]), "part of a stop string was streamed"


def test_length_cut_never_leaves_a_broken_character(memorized_engine):
    prompt = memorized_engine.chat_prompt([{"role": "user", "content": QUESTION}])
    for n in range(1, 8):  # 龙 is 3 byte tokens after a "▁": most budgets end inside a character
        [c] = memorized_engine.generate([prompt], SamplingParams(max_new_tokens=n, temperature=0.0))
        assert "\ufffd" not in c.text and REPLY.startswith(c.text) and c.finish_reason == "length"


def test_history_trimmed_oldest_turn_first(memorized_model_dir):
    from zhllama.templates import encode_messages

    engine = Engine.load(memorized_model_dir, context_length=200)
    system = [{"role": "system", "content": "系统"}]
    turns = [[{"role": "user", "content": f"问题{i} " * 4}, {"role": "assistant", "content": f"回答{i}"}] for i in range(4)]
    last = [{"role": "user", "content": QUESTION}]
    msgs = system + sum(turns, []) + last
    ids = engine.chat_prompt(msgs, max_new_tokens=40)
    encode = lambda m: encode_messages(engine.tokenizer, "alpaca", m, add_generation_prompt=True)[0]
    kept = next(k for k in range(4, -1, -1) if len(encode(system + sum(turns[4 - k:], []) + last)) <= 160)
    assert 0 < kept < 4, "the test needs some but not all turns to fit"
    assert ids == encode(system + sum(turns[4 - kept:], []) + last)  # newest turns kept, system kept
    assert len(ids) <= 200 - 40 < len(encode(system + sum(turns[3 - kept:], []) + last))
    with pytest.raises(ZhllamaError, match="does not fit the context"):
        engine.chat_prompt([{"role": "user", "content": "长" * 400}], max_new_tokens=40)


def test_bad_inputs_are_clear_errors(tiny_engine):
    prompt = tiny_engine.text_prompt("hi")
    for bad in [SamplingParams(max_new_tokens=-1), SamplingParams(temperature=-0.5), SamplingParams(top_p=0),
                SamplingParams(stop=("",))]:
        with pytest.raises(ZhllamaError):
            tiny_engine.generate([prompt], bad)
    with pytest.raises(ZhllamaError, match="context"):
        tiny_engine.generate([[1] * (tiny_engine.context_length + 1)], GREEDY)
    with pytest.raises(ZhllamaError, match="unsupported role"):
        tiny_engine.chat_prompt([{"role": "robot", "content": "x"}])


def test_prompt_near_context_is_cut_at_the_context(tiny_engine):
    prompt = [1] + [100] * (tiny_engine.context_length - 4)
    [c] = tiny_engine.generate([prompt], GREEDY)
    assert c.completion_tokens == 3 and c.finish_reason == "length"


def test_embed_is_normalised_and_deterministic(tiny_engine):
    a, b, a2 = tiny_engine.embed(["你好，世界", "return the value", "你好，世界"])
    assert abs(sum(x * x for x in a) - 1.0) < 1e-5 and len(a) == tiny_engine.model.config.hidden_size
    assert a == pytest.approx(a2, abs=1e-6) and a != pytest.approx(b, abs=1e-3)


@pytest.mark.parametrize("spec,rope_type", [("linear:2", "linear"), ("ntk:2", "dynamic"), ("yarn:2", "yarn")])
def test_rope_scaling_extends_the_context(tiny_model_dir, tiny_engine, spec, rope_type):
    engine = Engine.load(tiny_model_dir, rope_scaling=RopeScaling.from_text(spec))
    assert engine.context_length == 2 * tiny_engine.context_length
    assert engine.model.config.rope_parameters["rope_type"] == rope_type
    inv = engine.model.model.rotary_emb.inv_freq
    base = tiny_engine.model.model.rotary_emb.inv_freq
    if rope_type == "linear":
        assert torch.allclose(inv, base / 2)
    elif rope_type == "yarn":
        assert not torch.allclose(inv, base)
    prompt = [1] + [100, 200, 300] * (tiny_engine.context_length // 3)  # longer than the original context
    [c] = engine.generate([prompt], SamplingParams(max_new_tokens=4, temperature=0))
    assert c.completion_tokens == 4
    with pytest.raises(ZhllamaError, match="--rope-scaling 'cubic:2': unknown kind"):  # parsed where it enters
        RopeScaling.from_text("cubic:2")


def test_lora_adapter_unmerged_with_its_template(tiny_model_dir, tiny_engine, tmp_path):
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM

    from zhllama.meta import write_meta

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    peft = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    torch.manual_seed(0)
    for name, p in peft.named_parameters():
        if "lora_B" in name:
            p.data.normal_(0, 0.5)  # a trained-looking adapter (B starts at zero)
    peft.save_pretrained(tmp_path / "adapter")
    write_meta(tmp_path / "adapter", template="chatml")
    engine = Engine.load(tiny_model_dir, lora=tmp_path / "adapter")
    assert isinstance(engine.model, PeftModel) and engine.template.name == "chatml"
    prompt = engine.text_prompt("Return the value of")
    ours = engine.generate([prompt], GREEDY)[0].token_ids
    assert ours != tiny_engine.generate([prompt], GREEDY)[0].token_ids
    assert ours == hf_greedy(engine, [prompt], 24)[0]
    assert len(engine.embed(["你好"])[0]) == engine.model.config.hidden_size


@pytest.fixture(scope="module")
def draft_dir(tiny_model_dir, tmp_path_factory):
    from zhllama.model.init import InitConfig, init_model

    out = tmp_path_factory.mktemp("draft") / "model"
    return init_model(InitConfig(tokenizer=str(tiny_model_dir), out=str(out), hidden_size=32, layers=1, heads=2,
                                 max_position=512, seed=1))


@pytest.mark.parametrize("penalty", [1.0, 1.3])
def test_speculative_greedy_equals_the_target_greedy(tiny_model_dir, tiny_engine, draft_dir, penalty):
    engine = Engine.load(tiny_model_dir, draft_model=draft_dir, draft_tokens=3)
    params = SamplingParams(max_new_tokens=20, temperature=0.0, repetition_penalty=penalty)
    for text in TEXTS:
        prompt = engine.text_prompt(text)
        assert engine.generate([prompt], params)[0].token_ids == tiny_engine.generate([prompt], params)[0].token_ids
    stats = engine.speculative_stats
    assert stats.rounds > 0 and stats.proposed == 3 * stats.rounds and 0 <= stats.accepted <= stats.proposed


def test_a_draft_that_is_the_target_is_always_accepted(tiny_model_dir, tiny_engine):
    """Greedy with the target as its own draft: every proposal is kept, k + 1 tokens per target pass."""
    engine = Engine(tiny_engine.model, tiny_engine.tokenizer, "alpaca", draft=tiny_engine.model, draft_tokens=3)
    params = SamplingParams(max_new_tokens=40, temperature=0.0)
    prompt = engine.text_prompt(TEXTS[0])
    assert engine.generate([prompt], params)[0].token_ids == tiny_engine.generate([prompt], params)[0].token_ids
    stats = engine.speculative_stats
    assert stats.acceptance_rate == 1.0 and stats.tokens_per_round == 4.0


def test_speculative_sampling_is_seeded_and_streams_whole_characters(memorized_engine, tiny_model_dir, draft_dir):
    engine = Engine.load(tiny_model_dir, draft_model=draft_dir)
    prompt = engine.text_prompt(TEXTS[0])
    runs = [engine.generate([prompt], SamplingParams(max_new_tokens=30, temperature=1.0, seed=s))[0] for s in (3, 3, 4)]
    assert runs[0].token_ids == runs[1].token_ids != runs[2].token_ids
    assert runs[0].completion_tokens == 30 or runs[0].finish_reason == "stop"
    own = Engine(memorized_engine.model, memorized_engine.tokenizer, "alpaca", draft=memorized_engine.model)
    prompt = own.chat_prompt([{"role": "user", "content": QUESTION}])
    deltas = [d for _, d, _ in own.stream([prompt], SamplingParams(max_new_tokens=100, temperature=0.0, stop=("🐊",)))]
    assert "".join(deltas) == REPLY[:REPLY.index("🐊")] and not any("\ufffd" in d for d in deltas)


def test_draft_with_another_tokenizer_is_refused(tiny_model_dir, tmp_path):
    import mistral_common

    from zhllama.model.init import InitConfig, init_model
    from zhllama.tokenizer.hf import write_hf_tokenizer

    tok = write_hf_tokenizer(Path(mistral_common.__file__).parent / "data" / "tokenizer.model.v1", tmp_path / "tok")
    other = init_model(InitConfig(tokenizer=str(tok), out=str(tmp_path / "m"), hidden_size=16, layers=1, heads=2))
    with pytest.raises(ZhllamaError, match="tokenizer differs"):
        Engine.load(tiny_model_dir, draft_model=other)


@pytest.mark.parametrize("extreme", [{"temperature": 2.2e-311}, {"temperature": 1.0, "repetition_penalty": 1e-300}])
def test_extreme_but_legal_settings_sample_instead_of_raising(tiny_engine, extreme):
    """Found by the server's property test: a subnormal temperature overflowed the scores to inf and
    multinomial raised on the NaN softmax. Such settings now sample (the top scores share the mass)."""
    from zhllama.infer.sampling import SamplingParams

    params = SamplingParams(max_new_tokens=3, seed=0, **extreme).validate()
    out = tiny_engine.generate([tiny_engine.text_prompt("北京")], params)
    assert out[0].finish_reason in ("length", "stop") and out[0].completion_tokens >= 1


def _padded_with_loud_padding_rows(model_dir, rows: int):
    """The model with ``rows`` output rows beyond the tokenizer, whose logits are forced far above
    every real token's: a decoder that does not cut them off generates nothing but padding ids."""
    from zhllama.model.load import load_model

    model, tok = load_model(model_dir)
    real = len(tok)
    model.resize_token_embeddings(real + rows)

    def loud(_module, _inputs, logits):
        logits[..., real:] = 1e4
        return logits

    model.get_output_embeddings().register_forward_hook(loud)
    return model, tok


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_padding_rows_are_never_generated_with_or_without_a_draft(tiny_model_dir, draft_dir, temperature):
    target, tok = _padded_with_loud_padding_rows(tiny_model_dir, 64)
    draft, _ = _padded_with_loud_padding_rows(draft_dir, 64)
    params = SamplingParams(max_new_tokens=12, temperature=temperature, seed=5)
    plain = Engine(target, tok, "alpaca")
    speculative = Engine(target, tok, "alpaca", draft=draft, draft_tokens=3)
    prompt = plain.text_prompt(TEXTS[0])
    outs = [e.generate([prompt], params)[0].token_ids for e in (plain, speculative)]
    assert all(len(o) == 12 and max(o) < len(tok) for o in outs)
    if temperature == 0.0:
        assert outs[0] == outs[1]


class _PastKeyValuesForward(torch.nn.Module):
    """The tiny model behind a forward that takes its KV cache as ``past_key_values`` (transformers before
    the rename to ``cache``, e.g. 5.19 in vLLM's environment); any other keyword is refused, where the real
    one would drop it silently into ``**kwargs`` and decode without the cache."""

    def __init__(self, model):
        super().__init__()
        self.inner, self.config = model, model.config

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, past_key_values=None, use_cache=None,
                logits_to_keep=0, **kwargs):
        assert not kwargs, f"unexpected {sorted(kwargs)}"
        return self.inner(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                          cache=past_key_values, use_cache=use_cache, logits_to_keep=logits_to_keep)


def test_the_kv_cache_goes_under_the_name_the_forward_takes(tiny_engine):
    from zhllama.infer.batch import cache_argument

    assert cache_argument(tiny_engine.model) == "cache"
    old = Engine(_PastKeyValuesForward(tiny_engine.model), tiny_engine.tokenizer, tiny_engine.template)
    assert cache_argument(old.model) == "past_key_values"
    prompts = [tiny_engine.text_prompt(t) for t in TEXTS]
    assert [c.token_ids for c in old.generate(prompts, GREEDY)] == [c.token_ids for c in tiny_engine.generate(prompts, GREEDY)]

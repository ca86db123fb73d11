"""``--engine llamacpp``: parity with zhllama's engine, continuous batching, and the server on llama.cpp.

Skipped without llama-cpp-python; ``make test-engines-native`` runs it in the engines venv, where
``ZHLLAMA_ENGINE_TESTS=1`` turns that skip into a failure.  The model is written by ``zhllama model
init`` and its attention and output sharpened (a freshly initialised model attends almost uniformly,
so a wrong RoPE or Q/K layout would hardly change its tokens); llama.cpp runs its f32 export, whose
greedy tokens equal torch's float32 ones.  Replies are kept to 16 tokens: the two libraries sum in
different orders, and a random model meets a near-tie between its two best tokens every few dozen
steps (one diverged at token 20), where float32 rounding may pick either.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
from infer_memorized import QUESTION, RAW_CONTINUATION, RAW_PROMPT, REPLY
from engine_cases import CHATS, TEXTS

llama_cpp = pytest.importorskip("llama_cpp")


@pytest.fixture(scope="module")
def model_dir(tiny_tokenizer_dir, tmp_path_factory):
    from safetensors.torch import load_file, save_file

    from zhllama.meta import write_meta
    from zhllama.model.init import InitConfig, init_model
    from zhllama.tokenizer.chat import set_chat_template

    out = tmp_path_factory.mktemp("llamacpp") / "model"
    init_model(InitConfig(tokenizer=str(tiny_tokenizer_dir), out=str(out), hidden_size=128, layers=2, heads=2,
                          kv_heads=1, intermediate_size=256, max_position=512, seed=0))
    weights = out / "model.safetensors"
    tensors = load_file(str(weights))
    for name, t in tensors.items():
        if name.endswith(("q_proj.weight", "k_proj.weight")):
            tensors[name] = (t * 12.0).contiguous()
        elif name.endswith(("lm_head.weight", "embed_tokens.weight")):
            tensors[name] = (t * 10.0).contiguous()
    save_file(tensors, str(weights), metadata={"format": "pt"})
    write_meta(out, template="llama2-zh")  # a template with a system block and BOS between turns
    set_chat_template(out, "llama2-zh")  # the folder's Jinja template follows, as after `zhllama train sft`
    return out


def _load(model, parallel=4, **backend):
    from zhllama.infer.backend import BackendConfig
    from zhllama.infer.config import EngineConfig

    template = backend.pop("template", None)
    return BackendConfig(kind="llamacpp", **backend).load(EngineConfig(model=str(model), template=template),
                                                          threads=2, parallel=parallel)


@pytest.fixture(scope="module")
def engines(model_dir):
    """(zhllama's engine in float32, llama.cpp on the folder's f32 export) on the same model."""
    from zhllama.infer.config import EngineConfig

    theirs = _load(model_dir, outtype="f32")
    yield EngineConfig(model=str(model_dir), dtype="float32").load(), theirs
    theirs.close()


def _greedy(max_new_tokens=16, **kw):
    from zhllama.infer.sampling import SamplingParams

    return SamplingParams(max_new_tokens=max_new_tokens, temperature=0.0, **kw)


def _same(a, b):
    assert [(c.token_ids, c.text, c.finish_reason, c.prompt_tokens, c.completion_tokens) for c in a] == \
           [(c.token_ids, c.text, c.finish_reason, c.prompt_tokens, c.completion_tokens) for c in b]


def test_the_gguf_gives_zhllamas_prompt_ids_and_template(engines, model_dir):
    ours, theirs = engines
    assert theirs.template.name == "llama2-zh"  # the GGUF's chat template, recognised as zhllama's
    assert theirs.path.parent == model_dir / ".zhllama-gguf" and theirs.path.name.startswith("f32-")
    for messages in CHATS:
        assert theirs.chat_prompt(messages) == ours.chat_prompt(messages)
    for text in TEXTS:
        assert theirs.text_prompt(text) == ours.text_prompt(text)
    assert theirs.eos_ids == ours.eos_ids and theirs.context_length == ours.context_length == 512


@pytest.mark.parametrize("penalty", [1.0, 1.1])
def test_chat_greedy_replies_equal_zhllamas_engine(engines, penalty):
    ours, theirs = engines
    prompts = [ours.chat_prompt(m) for m in CHATS]
    _same(ours.generate(prompts, _greedy(repetition_penalty=penalty)),
          theirs.generate(prompts, _greedy(repetition_penalty=penalty)))


def test_completion_greedy_equals_zhllamas_engine_and_a_stop_string_ends_it(engines):
    ours, theirs = engines
    prompts = [ours.text_prompt(t) for t in TEXTS]
    mine = ours.generate(prompts, _greedy(16, repetition_penalty=1.0))
    _same(mine, theirs.generate(prompts, _greedy(16, repetition_penalty=1.0)))
    assert any(c.finish_reason == "length" for c in mine)
    stop = mine[0].text[len(mine[0].text) // 2:][:2]
    params = _greedy(16, repetition_penalty=1.0, stop=(stop,))
    a, b = ours.generate(prompts[:1], params)[0], theirs.generate(prompts[:1], params)[0]
    assert b.finish_reason == "stop" and stop not in b.text
    _same([a], [b])


def _step(batch, texts: dict, times: int = 1) -> None:
    for _ in range(times):
        for number, delta, _, _ in batch.step():
            texts[number] = texts.get(number, "") + delta
        if not len(batch):
            return


def test_continuous_batch_joins_midway_waits_for_a_sequence_and_cancels_as_zhllamas(engines, model_dir):
    """Requests that join after others started, one cancelled, and (on a 2-sequence engine) one that waits
    for a free sequence: the rest get the replies zhllama's own running batch gives."""
    ours, theirs = engines
    two = _load(model_dir, parallel=2, outtype="f32")
    prompts = [ours.chat_prompt(m) for m in CHATS]
    replies = []
    for engine in (ours, theirs, two):
        batch, texts = engine.open_batch(), {}
        first = [batch.add(p, _greedy(repetition_penalty=1.0)) for p in prompts[:2]]
        _step(batch, texts, 3)
        gone = batch.add(prompts[0], _greedy(repetition_penalty=1.0))
        late = batch.add(prompts[2], _greedy(repetition_penalty=1.0))
        _step(batch, texts)
        batch.cancel(gone)
        _step(batch, texts, 1000)
        assert not len(batch)
        replies.append([texts[n] for n in [*first, late]])
    two.close()
    assert replies[0] == replies[1] == replies[2]


def test_seeded_sampling_is_reproducible_and_private_to_each_request(engines):
    """A seed gives the same reply alone or beside other requests (each has its own sampler chain)."""
    from zhllama.infer.sampling import SamplingParams

    _, theirs = engines
    prompts = [theirs.text_prompt(t) for t in TEXTS]
    sampled = [SamplingParams(max_new_tokens=16, temperature=1.0, top_p=0.95, top_k=50, seed=s) for s in (7, 8, 9)]
    alone = [theirs.generate([p], s)[0].text for p, s in zip(prompts, sampled)]
    together = [c.text for c in theirs.generate(prompts, sampled)]
    assert alone == together
    reseeded = theirs.generate([prompts[0]] * 3, [SamplingParams(max_new_tokens=16, temperature=1.0, seed=s)
                                                  for s in (1, 2, 3)])
    assert len({c.text for c in reseeded}) > 1  # different seeds, different draws


def test_guidance_and_embeddings_are_refused_naming_the_engine(engines):
    from zhllama.errors import ZhllamaError

    _, theirs = engines
    with pytest.raises(ZhllamaError, match="classifier-free guidance.*--engine llamacpp"):
        theirs.open_batch().add(theirs.text_prompt(TEXTS[0]), _greedy(guidance_scale=1.5))
    with pytest.raises(ZhllamaError, match="embeddings are not served with --engine llamacpp"):
        theirs.embed(["你好"])


def test_a_gguf_file_runs_with_template_override_and_its_own_jinja_template(engines, model_dir, tmp_path):
    """A .gguf file directly: ``--template`` wins over the file's; a template zhllama does not know is
    rendered from the file's Jinja, its special tokens parsed."""
    from zhllama.export import export_gguf
    from zhllama.templates import encode_messages, get_template

    ours, theirs = engines
    alpaca = _load(theirs.path, template="alpaca")
    assert alpaca.template.name == "alpaca"
    assert alpaca.chat_prompt(CHATS[0]) == encode_messages(ours.tokenizer, "alpaca", CHATS[0])[0]
    alpaca.close()
    folder = tmp_path / "custom"
    folder.mkdir()
    for f in model_dir.iterdir():
        if f.is_file() and f.name != "chat_template.jinja":
            (folder / f.name).write_bytes(f.read_bytes())
    jinja = ("{{ bos_token }}{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{{ eos_token }}{% endfor %}"
             "{% if add_generation_prompt %}<assistant>{% endif %}")
    (folder / "chat_template.jinja").write_text(jinja, encoding="utf-8")
    gguf = export_gguf(folder, tmp_path / "custom.gguf", outtype="f16", progress=False)
    custom = _load(gguf)
    assert custom.template.name == "gguf" and get_template("llama2-zh").jinja() != jinja
    tok = ours.tokenizer
    want = [tok.bos_token_id] + tok("<user>你好", add_special_tokens=False)["input_ids"] + [tok.eos_token_id] + \
        tok("<assistant>", add_special_tokens=False)["input_ids"]
    assert custom.chat_prompt([{"role": "user", "content": "你好"}]) == want
    assert custom.generate([want], _greedy(8))[0].completion_tokens >= 1
    custom.close()


# ---------------------------------------------------------------- the server on llama.cpp


@pytest.fixture(scope="module")
def clients(engines):
    from fastapi.testclient import TestClient

    from zhllama.serve.config import ApiSettings
    from zhllama.serve.openai import create_app

    apps = [create_app(e, ApiSettings(model_name="tiny", api_key="k", max_batch_size=4)) for e in engines]
    with TestClient(apps[0]) as ours, TestClient(apps[1]) as theirs:
        yield ours, theirs


AUTH = {"Authorization": "Bearer k"}


def test_server_keeps_routes_auth_and_answers_as_zhllamas(clients):
    answers = []
    for client in clients:
        assert client.post("/v1/chat/completions", json={"model": "tiny", "messages": CHATS[0]}).status_code == 401
        body = {"model": "tiny", "messages": CHATS[0], "temperature": 0, "max_tokens": 16}
        chat = client.post("/v1/chat/completions", json=body, headers=AUTH).json()
        text = client.post("/v1/completions", headers=AUTH, json={"model": "tiny", "prompt": TEXTS[0],
                                                                  "temperature": 0, "max_tokens": 16}).json()
        plain = client.post("/chat", headers=AUTH, json={"messages": CHATS[1], "temperature": 0, "max_tokens": 8})
        answers.append((chat["choices"][0]["message"]["content"], chat["usage"], text["choices"][0]["text"],
                        text["usage"], plain.status_code, plain.json(), client.get("/health").status_code))
    assert answers[0] == answers[1]


def test_streaming_gives_the_same_text_and_usage(clients):
    _, client = clients
    body = {"model": "tiny", "messages": CHATS[1], "temperature": 0, "max_tokens": 20}
    whole = client.post("/v1/chat/completions", json=body, headers=AUTH).json()
    pieces, usage = [], None
    with client.stream("POST", "/v1/chat/completions", headers=AUTH,
                       json={**body, "stream": True, "stream_options": {"include_usage": True}}) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                chunk = json.loads(line[6:])
                usage = chunk.get("usage") or usage
                pieces += [c["delta"].get("content", "") for c in chunk["choices"]]
    assert "".join(pieces) == whole["choices"][0]["message"]["content"]
    assert usage == whole["usage"]


def test_concurrent_requests_with_a_bad_one_each_get_their_own_answer(clients):
    """Eight clients at once (seeded sampling and greedy mixed, one asking for CFG, which llama.cpp cannot
    do): the good ones get what they get alone, the bad one gets one error line."""
    _, client = clients
    bodies = [{"model": "tiny", "messages": CHATS[i % 3], "max_tokens": 12, "temperature": 0.8, "seed": i}
              for i in range(6)]
    bodies += [{"model": "tiny", "messages": CHATS[0], "max_tokens": 12, "temperature": 0}]
    bodies += [{"model": "tiny", "messages": CHATS[0], "max_tokens": 12, "guidance_scale": 1.5}]

    def ask(body):
        return client.post("/v1/chat/completions", json=body, headers=AUTH)

    alone = [ask(b).json()["choices"][0]["message"]["content"] for b in bodies[:7]]
    with ThreadPoolExecutor(len(bodies)) as pool:
        together = list(pool.map(ask, bodies))
    assert [r.status_code for r in together[:7]] == [200] * 7
    assert [r.json()["choices"][0]["message"]["content"] for r in together[:7]] == alone
    assert together[7].status_code == 400 and "--engine llamacpp" in together[7].json()["error"]["message"]


def test_logprobs_are_refused_with_a_400_naming_the_engine(clients):
    _, client = clients
    for route, body in (("/v1/completions", {"prompt": TEXTS[0], "max_tokens": 4, "logprobs": 2}),
                        ("/v1/chat/completions", {"messages": CHATS[0], "max_tokens": 4, "logprobs": True})):
        r = client.post(route, headers=AUTH, json={"model": "tiny", **body})
        assert r.status_code == 400 and "logprobs and echo are not available with --engine llamacpp" in r.text
    assert client.post("/v1/completions", headers=AUTH, json={"model": "tiny", "prompt": TEXTS[0],
                                                               "max_tokens": 4}).status_code == 200


def test_a_request_that_fails_inside_a_llama_cpp_step_fails_alone(engines):
    """A failure in the middle of a shared llama.cpp step (its sampler could not be built) reaches only its
    request; the scheduler reruns the others, which answer as in a healthy batch."""
    from zhllama.infer.sampling import SamplingParams
    from zhllama.serve.batching import Channel, Delta, GenJob
    from zhllama.serve.continuous import ContinuousScheduler

    theirs = _load(engines[1].path)  # its own engine: one engine runs one batch, and the server's holds one
    prompts = [theirs.text_prompt(t) for t in TEXTS]
    greedy = SamplingParams(max_new_tokens=6, temperature=0.0)
    build = theirs.sampler

    def sampler(request):
        if request.params.seed == 666:
            raise RuntimeError("poisoned request")
        return build(request)

    theirs.sampler = sampler

    async def run(params_list):
        sched = ContinuousScheduler(theirs, max_batch_size=4, batch_wait_s=0.05)
        channel = Channel()
        jobs = [GenJob((lambda p=p: p), params, channel, index=i) for i, (p, params) in enumerate(params_list)]
        sched.submit(jobs)
        sched.start()
        events = {i: [] for i in range(len(jobs))}
        try:
            done = 0
            while done < len(jobs):
                i, e = await asyncio.wait_for(channel.get(), 60)
                events[i].append(e)
                done += isinstance(e, Exception) or (isinstance(e, Delta) and e.finish_reason is not None)
            return events
        finally:
            sched.close()

    clean = asyncio.run(run([(p, greedy) for p in prompts]))
    poisoned = SamplingParams(max_new_tokens=6, temperature=0.0, seed=666)
    mixed = asyncio.run(run([(prompts[0], greedy), (prompts[1], poisoned), (prompts[2], greedy)]))
    assert isinstance(mixed[1][-1], RuntimeError) and "poisoned" in str(mixed[1][-1])
    for i in (0, 2):
        assert "".join(e.text for e in mixed[i] if isinstance(e, Delta)) == \
            "".join(e.text for e in clean[i] if isinstance(e, Delta))
    theirs.close()


def test_the_official_openai_client_works_against_it(clients):
    openai = pytest.importorskip("openai")
    _, client = clients
    api = openai.OpenAI(api_key="k", base_url="http://testserver/v1", http_client=client)
    reply = api.chat.completions.create(model="tiny", messages=CHATS[0], max_tokens=8, temperature=0)
    assert reply.choices[0].finish_reason in ("stop", "length") and reply.usage.completion_tokens >= 1
    streamed = "".join(c.choices[0].delta.content or "" for c in api.chat.completions.create(
        model="tiny", messages=CHATS[0], max_tokens=8, temperature=0, stream=True) if c.choices)
    assert streamed == reply.choices[0].message.content
    with pytest.raises(openai.BadRequestError, match="embeddings are not served with --engine llamacpp"):
        api.embeddings.create(model="tiny", input=["你好"])


# ---------------------------------------------------------------- the commands


def test_chat_and_generate_run_on_llama_cpp_and_stream_whole_characters(memorized_model_dir, tmp_path):
    """The memorised model's reply is mostly byte-fallback characters (and an emoji): through llama.cpp
    it comes out whole, in `zhllama chat` (a pipe; the folder exported on first use, with the template its
    zhllama.json records) and `zhllama generate`."""
    import shutil

    folder = shutil.copytree(memorized_model_dir, tmp_path / "model")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    chat = subprocess.run([sys.executable, "-m", "zhllama", "chat", "--model", str(folder), "--engine", "llamacpp",
                           "--outtype", "f32", "--threads", "2", "--temperature", "0"],
                          input=f"{QUESTION}\n/exit\n", capture_output=True, text=True, encoding="utf-8",
                          timeout=240, env=env)
    assert chat.returncode == 0, chat.stderr
    assert chat.stdout.split("\n")[0] == REPLY  # memorised with the alpaca template, which zhllama.json records
    inp, out = tmp_path / "in.txt", tmp_path / "out.jsonl"
    inp.write_text(f"{RAW_PROMPT}\n", encoding="utf-8")
    from zhllama.cli import main

    assert main(["generate", "--model", str(folder), "--engine", "llamacpp", "--outtype", "f32", "--template", "none",
                 "--input", str(inp), "--output", str(out), "--temperature", "0", "--max-new-tokens", "60",
                 "--threads", "2"]) == 0
    row = json.loads(out.read_text(encoding="utf-8"))
    assert (row["output"], row["finish_reason"]) == (RAW_CONTINUATION, "stop")


def test_the_web_ui_builds_and_streams_the_engines_reply(engines):
    """`zhllama webui --engine llamacpp`: the Gradio page builds on the llama.cpp engine and its responder
    streams the reply the engine gives (a growing text)."""
    pytest.importorskip("gradio")
    from zhllama.infer.sampling import SamplingParams
    from zhllama.serve.webui import build_demo, make_responder

    engine = _load(engines[1].path)  # its own engine: the page's scheduler owns its batch
    history = [{"role": "user", "content": "你好"}, {"role": "assistant", "content": "你好，有什么可以帮你？"}]
    messages = [{"role": "system", "content": "你是助手"}, *history, {"role": "user", "content": "北京在哪里"}]
    expected = engine.generate([engine.chat_prompt(messages, 10)],
                               SamplingParams(max_new_tokens=10, temperature=0, top_k=40, top_p=0.9))[0].text
    demo, scheduler = build_demo(engine, "tiny", max_batch_size=2)
    try:
        async def run():
            respond = make_responder(engine, scheduler)
            return [p async for p in respond("北京在哪里", history, "你是助手", 0.0, 0.9, 40, 10, 1.1)]

        partials = asyncio.run(run())
    finally:
        scheduler.close()
        engine.close()
    assert partials[-1] == expected and all(b.startswith(a) for a, b in zip(partials, partials[1:]))

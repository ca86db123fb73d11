"""`zhllama chat` through a pipe and `zhllama generate` with batching, JSONL and resuming."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from infer_memorized import QUESTION, RAW_CONTINUATION, RAW_PROMPT, REPLY

from zhllama.cli import main


def run_chat(model_dir, stdin: str, *extra: str):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "zhllama", "chat", "--model", str(model_dir), *extra],
                          input=stdin, capture_output=True, text=True, encoding="utf-8", timeout=240, env=env)


def test_chat_through_a_pipe(memorized_model_dir):
    stdin = "\n".join([QUESTION, "/clear", QUESTION, "/max_tokens 4", "/clear", QUESTION, "/temperature x",
                       "/exit", QUESTION]) + "\n"
    r = run_chat(memorized_model_dir, stdin, "--temperature", "0")
    assert r.returncode == 0, r.stderr
    replies = r.stdout.split("\n")
    assert replies[0] == REPLY and replies[1] == REPLY  # /clear: the same prompt again
    assert replies[2] and REPLY.startswith(replies[2]) and len(replies[2]) <= 2  # /max_tokens 4: 龙 is 4 tokens
    assert replies[3:] == [""], "nothing is answered after /exit"
    assert "max_tokens=4" in r.stderr and "/temperature needs a number" in r.stderr


def test_chat_session_keeps_history_and_system(memorized_engine):
    from zhllama.infer.chat import ChatSession
    from zhllama.infer.sampling import SamplingParams

    session = ChatSession(memorized_engine, SamplingParams(temperature=0, max_new_tokens=60))
    assert "".join(session.reply(QUESTION)) == REPLY
    assert session.history == [{"role": "user", "content": QUESTION}, {"role": "assistant", "content": REPLY}]
    assert session.messages("再说一次")[:2] == session.history
    assert session.command("/system 你是助手") == "system prompt set; conversation cleared"
    assert session.history == [] and session.messages("x")[0] == {"role": "system", "content": "你是助手"}
    session.command("/stop 麒麟")
    session.command("/system")
    assert session.params.stop == ("麒麟",)
    assert session.command("/exit") is None


def gen(model_dir, inp, out, *extra):
    return main(["generate", "--model", str(model_dir), "--input", str(inp), "--output", str(out),
                 "--temperature", "0", "--max-new-tokens", "80", *extra])


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_generate_txt_resumes_after_interruption(memorized_model_dir, tmp_path):
    inp, out = tmp_path / "prompts.txt", tmp_path / "out.jsonl"
    prompts = [RAW_PROMPT, "hello", "", "你好", "第四", "five"]
    inp.write_text("\n".join(prompts) + "\n", encoding="utf-8")
    assert gen(memorized_model_dir, inp, out, "--template", "none", "--batch-size", "2", "--limit", "3") == 0
    first = read_jsonl(out)
    assert [r["prompt"] for r in first] == [RAW_PROMPT, "hello", "你好"]
    with open(out, "a", encoding="utf-8") as f:  # a run killed while writing a line
        f.write('{"id": "line 5", "prompt": "第')
    assert gen(memorized_model_dir, inp, out, "--template", "none", "--batch-size", "2") == 0
    rows = read_jsonl(out)
    assert [r["id"] for r in rows] == ["line 1", "line 2", "line 4", "line 5", "line 6"]  # no duplicates
    assert rows[:3] == first
    assert rows[0]["output"] == RAW_CONTINUATION and rows[0]["finish_reason"] == "stop"
    assert all(r["prompt_tokens"] > 0 and r["completion_tokens"] > 0 for r in rows)
    assert gen(memorized_model_dir, inp, out, "--template", "none") == 0 and read_jsonl(out) == rows  # nothing left


def test_generate_jsonl_prompt_and_messages(memorized_model_dir, tmp_path):
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    lines = [{"id": "a", "prompt": QUESTION},
             {"id": "b", "messages": [{"role": "user", "content": "早上好"}, {"role": "assistant", "content": "好"},
                                      {"role": "user", "content": QUESTION}]},
             {"prompt": "长" * 600}]
    inp.write_text("\n".join(json.dumps(x, ensure_ascii=False) for x in lines) + "\n", encoding="utf-8")
    assert gen(memorized_model_dir, inp, out, "--batch-size", "8") == 0  # template alpaca from zhllama.json
    a, b, c = read_jsonl(out)
    assert a["id"] == "a" and a["output"] == REPLY and a["finish_reason"] == "stop"
    assert b["prompt"] == QUESTION and b["messages"] == lines[1]["messages"] and "output" in b
    assert c["id"] == "line 3" and "context" in c["error"] and "output" not in c


def test_generate_bad_input_is_a_one_line_error(memorized_model_dir, tmp_path, capsys):
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    inp.write_text('{"prompt": "ok"}\n{"text": "no prompt"}\n', encoding="utf-8")
    assert gen(memorized_model_dir, inp, out) == 2
    err = capsys.readouterr().err
    assert f"{inp}:2: needs a 'prompt'" in err and "Traceback" not in err
    inp.write_text('{"prompt": "ok"}\n', encoding="utf-8")
    out.write_text('{"id": "line 1", "prompt": "another prompt", "output": "x"}\n', encoding="utf-8")
    assert gen(memorized_model_dir, inp, out) == 2
    assert "different prompt" in capsys.readouterr().err
    assert gen(memorized_model_dir, inp, out, "--overwrite") == 0 and read_jsonl(out)[0]["prompt"] == "ok"


@pytest.mark.parametrize("command", ["chat", "generate"])
def test_help(command, capsys):
    with pytest.raises(SystemExit) as e:
        main([command, "--help"])
    assert e.value.code == 0 and "--model" in capsys.readouterr().out


def test_generate_with_a_draft_model_gives_the_same_greedy_text(memorized_model_dir, tiny_model_dir, tmp_path, capsys):
    inp = tmp_path / "in.txt"
    inp.write_text(f"{QUESTION}\nhello\n", encoding="utf-8")
    assert gen(memorized_model_dir, inp, tmp_path / "plain.jsonl") == 0
    assert "draft:" not in capsys.readouterr().out
    assert gen(memorized_model_dir, inp, tmp_path / "spec.jsonl", "--batch-size", "1", "--draft-model",
               str(memorized_model_dir), "--draft-tokens", "3") == 0
    assert "draft: 100% of proposed tokens accepted, 4.00 tokens per model pass" in capsys.readouterr().out
    plain, spec = read_jsonl(tmp_path / "plain.jsonl"), read_jsonl(tmp_path / "spec.jsonl")
    assert plain[0]["output"] == REPLY and spec == plain


def test_generate_killed_then_resumed(tiny_model_dir, tmp_path):
    import signal
    import time

    inp, out = tmp_path / "in.txt", tmp_path / "out.jsonl"
    inp.write_text("".join(f"prompt number {i}\n" for i in range(12)), encoding="utf-8")
    cmd = [sys.executable, "-m", "zhllama", "generate", "--model", str(tiny_model_dir), "--input", str(inp),
           "--output", str(out), "--batch-size", "2", "--max-new-tokens", "60", "--seed", "0"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None and not (out.exists() and out.stat().st_size):
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    first = read_jsonl(out)
    assert 0 < len(first) < 12, "the run was killed part-way"
    assert subprocess.run(cmd, capture_output=True, env=env, timeout=240).returncode == 0
    rows = read_jsonl(out)
    assert sorted(r["id"] for r in rows) == sorted(f"line {i}" for i in range(1, 13))  # all, once each
    assert rows[:len(first)] == first

"""Bad input on every sub-command: one `zhllama: error:` line, exit 2, nothing written, inputs unchanged.

Each case names a command and what is wrong with its input; the same command on good input is
run by the stage's own tests.  The files a case may use are built once (`world`): a tiny model, a
tokenizer, a copy of the model whose weights file is cut short, a regular file to put outputs
under, GBK-encoded text and a recipe in GBK.
"""

from __future__ import annotations

import hashlib
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

import pytest

from zhllama.cli import main


@dataclass
class World:
    root: Path
    model: Path
    tokenizer: Path
    broken: Path  # the tiny model with model.safetensors truncated
    file: Path  # a regular file: outputs "under" it cannot be made
    text: Path  # UTF-8 Chinese text
    gbk: Path  # the same text in GBK
    sft: Path  # a valid Alpaca JSON file
    mc: Path  # CMMLU-layout folder


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_model_dir, tiny_tokenizer_dir) -> World:
    root = tmp_path_factory.mktemp("bad-input")
    broken = root / "broken-model"
    shutil.copytree(tiny_model_dir, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:64])
    (root / "somefile").write_text("not a folder\n")
    text = "北京是中国的首都。今天天气很好，我们去公园散步。\n" * 20
    (root / "zh.txt").write_text(text, encoding="utf-8")
    (root / "zh-gbk.txt").write_bytes(text.encode("gbk"))
    (root / "sft.json").write_text('[{"instruction": "你好", "input": "", "output": "你好！"}]', encoding="utf-8")
    mc = root / "cmmlu" / "test"
    mc.mkdir(parents=True)
    (mc / "anatomy.csv").write_text(",Question,A,B,C,D,Answer\n0,问题,甲,乙,丙,丁,A\n", encoding="utf-8")
    return World(root, tiny_model_dir, tiny_tokenizer_dir, broken, root / "somefile", root / "zh.txt",
                 root / "zh-gbk.txt", root / "sft.json", root / "cmmlu")


def _busy_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    return s


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cases(w: World, port: int, free: int = 1) -> dict[str, tuple[list[str], str]]:
    under = str(w.file / "out")
    m, t = str(w.model), str(w.tokenizer)
    return {
        # outputs under a regular file
        "tokenizer train --out under a file": (["tokenizer", "train", "--corpus", str(w.text), "--vocab-size", "300",
                                                "--out", under], "is a file, not a folder"),
        "tokenizer merge --out under a file": (["tokenizer", "merge", "--base", t, "--add", t, "--out", under],
                                               "is a file, not a folder"),
        "tokenizer stats --plot under a file": (["tokenizer", "stats", "--tokenizer", t, "--text", str(w.text),
                                                 "--plot", under + ".png"], "is a file, not a folder"),
        "model init --out under a file": (["model", "init", "--tokenizer", t, "--out", under], "is a file, not a folder"),
        "model resize --out under a file": (["model", "resize", "--model", m, "--tokenizer", t, "--out", under],
                                            "is a file, not a folder"),
        "train pt --output-dir under a file": (["train", "pt", "--model", m, "--train-files", str(w.text),
                                                "--output-dir", under, "--max-steps", "1"], "is a file, not a folder"),
        "merge --out under a file": (["merge", "--base", m, "--lora", m, "--out", under], "is a file, not a folder"),
        "generate --output under a file": (["generate", "--model", m, "--input", str(w.text), "--output",
                                            under + ".jsonl"], "is a file, not a folder"),
        "eval ppl --out under a file": (["eval", "ppl", "--model", m, "--text", str(w.text), "--out", under + ".json"],
                                        "is a file, not a folder"),
        "eval mc --out under a file": (["eval", "mc", "--model", m, "--data", str(w.mc), "--task", "cmmlu",
                                        "--out", under], "is a file, not a folder"),
        "export gguf --out under a file": (["export", "gguf", "--model", m, "--out", under + ".gguf"],
                                           "is a file, not a folder"),
        "eval compare --out under a file": (["eval", "compare", "--out", under, "--questions", str(w.text),
                                             "--model", m], "is a file, not a folder"),
        "demo --run-dir under a file": (["demo", "--run-dir", under], "is a file, not a folder"),
        "pipeline run_dir under a file": (["pipeline", str(w.root / "under.yaml"), "--check"], "is a file, not a folder"),
        # truncated weights
        "train pt on truncated weights": (["train", "pt", "--model", str(w.broken), "--train-files", str(w.text),
                                           "--output-dir", str(w.root / "o1"), "--max-steps", "1"], "is damaged"),
        "generate on truncated weights": (["generate", "--model", str(w.broken), "--input", str(w.text),
                                           "--output", str(w.root / "o2.jsonl")], "is damaged"),
        "eval ppl on truncated weights": (["eval", "ppl", "--model", str(w.broken), "--text", str(w.text)], "is damaged"),
        "chat on truncated weights": (["chat", "--model", str(w.broken)], "is damaged"),
        "serve on truncated weights": (["serve", "--model", str(w.broken), "--port", str(free)], "is damaged"),
        "export gguf on truncated weights": (["export", "gguf", "--model", str(w.broken), "--out",
                                              str(w.root / "o3.gguf")], "model.safetensors"),
        # text inputs in another encoding, outputs of the wrong kind
        "generate --input in GBK": (["generate", "--model", m, "--input", str(w.gbk), "--output",
                                     str(w.root / "o4.jsonl")], "not utf-8 text"),
        "generate --output naming a folder": (["generate", "--model", m, "--input", str(w.text), "--output",
                                               str(w.root)], "is a folder"),
        "eval ppl --text in GBK": (["eval", "ppl", "--model", m, "--text", str(w.gbk)], "not UTF-8 text"),
        # numbers out of range
        "model init --hidden-size 0": (["model", "init", "--tokenizer", t, "--hidden-size", "0", "--out",
                                        str(w.root / "o5")], "--hidden-size 0 is out of range"),
        "model init --layers -1": (["model", "init", "--tokenizer", t, "--layers", "-1", "--out", str(w.root / "o6")],
                                   "--layers -1 is out of range"),
        "train pt --learning-rate -1": (["train", "pt", "--model", m, "--train-files", str(w.text), "--output-dir",
                                         str(w.root / "o7"), "--learning-rate", "-1"], "--learning-rate -1.0 is out of range"),
        "train sft --learning-rate nan": (["train", "sft", "--model", m, "--train-files", str(w.sft), "--output-dir",
                                           str(w.root / "o8"), "--learning-rate", "nan"], "finite"),
        "chat --temperature -1": (["chat", "--model", m, "--temperature", "-1"], "--temperature -1.0 is out of range"),
        "eval ppl --context 100000": (["eval", "ppl", "--model", m, "--text", str(w.text), "--context", "100000"],
                                      "longer than the model's"),
        "serve --port 70000": (["serve", "--model", m, "--port", "70000"], "--port 70000 is out of range"),
        # servers on a busy port
        "serve on a busy port": (["serve", "--model", m, "--port", str(port)], f"cannot listen on 127.0.0.1:{port}"),
        "webui on a busy port": (["webui", "--model", m, "--port", str(port)], f"cannot listen on 127.0.0.1:{port}"),
        # recipes
        "pipeline with a GBK recipe": (["pipeline", str(w.root / "gbk.yaml"), "--check"], "not utf-8 text"),
        "pipeline with an empty recipe": (["pipeline", str(w.root / "empty.yaml"), "--check"], "no stages"),
        "eval mc --out an unrelated folder": (["eval", "mc", "--model", m, "--data", str(w.mc), "--task", "cmmlu",
                                               "--out", str(w.root / "notes")], "holds no eval mc results"),
    }


CASE_NAMES = list(_cases(World(*[Path("x")] * 9), 1))


def _snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("name", CASE_NAMES)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(name, world, capsys):
    (world.root / "gbk.yaml").write_bytes("name: 配方\nbase_model: x/y\nexport: {}\n".encode("gbk"))
    (world.root / "empty.yaml").write_text("# nothing to do\n", encoding="utf-8")
    (world.root / "under.yaml").write_text(f"run_dir: {world.file / 'run'}\nbase_model: {world.model}\nexport: {{}}\n",
                                           encoding="utf-8")
    notes = world.root / "notes"
    notes.mkdir(exist_ok=True)
    (notes / "keep.txt").write_text("mine")
    busy = _busy_port()
    try:
        argv, fragment = _cases(world, busy.getsockname()[1], _free_port())[name]
        before = _snapshot(world.root)
        capsys.readouterr()
        code = main(argv)
        err = capsys.readouterr().err
    finally:
        busy.close()
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, f"{name}: exit {code}\n{err[-3000:]}"
    assert lines and lines[-1].startswith("zhllama: error:") and "Traceback" not in err, err[-3000:]
    assert len([line for line in lines if line.startswith("zhllama: error:")]) == 1
    assert fragment in lines[-1], f"{name}: {lines[-1]!r} does not say {fragment!r}"
    assert _snapshot(world.root) == before, f"{name}: files were written or changed"

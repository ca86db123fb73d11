"""`zhllama data prepare`: token shards that are compact, deterministic, resumable, and read back as blocks."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import zhllama.data.shards as S
from zhllama.cli import main
from zhllama.data.blocks import PreparedCorpus, open_blocks
from zhllama.data.shards import Settings, prepare_shards, token_dtype
from zhllama.errors import ZhllamaError

SMALL = Settings(shard_bytes=2048)  # a few KB per shard: many shards from a small corpus


@pytest.fixture(scope="module")
def docs(builtin_text):
    return list(builtin_text["zh"][:200])


@pytest.fixture()
def corpus(tmp_path, docs) -> Path:
    p = tmp_path / "in" / "c.txt"
    p.parent.mkdir()
    p.write_text("\n".join(docs) + "\n", encoding="utf-8")
    return p


def doc_ids(tok, text):
    head = [] if tok.bos_token_id is None else [tok.bos_token_id]  # Qwen2 has no BOS
    return head + tok(text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]


def folder_bytes(out: Path) -> dict[str, bytes]:
    """Every file of a prepared folder (not the command's log)."""
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file() and p.suffix != ".log"}


def test_shards_hold_the_documents_as_uint16_and_do_not_depend_on_processes(tmp_path, corpus, docs, tiny_tokenizer):
    one = prepare_shards([str(corpus)], tiny_tokenizer, tmp_path / "one", settings=SMALL, progress=False)
    two = prepare_shards([str(corpus)], tiny_tokenizer, tmp_path / "two", settings=SMALL, num_proc=2, progress=False)
    assert len(one["shards"]) > 5 and one["dtype"] == "uint16"
    assert folder_bytes(tmp_path / "one") == folder_bytes(tmp_path / "two")  # byte-identical, index included
    expected = [i for d in docs for i in doc_ids(tiny_tokenizer, d)]
    c = PreparedCorpus(tmp_path / "one", tiny_tokenizer)
    assert c.read(0, c.tokens).tolist() == expected and c.documents == len(docs)
    assert c.doc_span(7) == (sum(len(doc_ids(tiny_tokenizer, d)) for d in docs[:7]),
                             sum(len(doc_ids(tiny_tokenizer, d)) for d in docs[:8]))
    on_disk = sum(p.stat().st_size for p in (tmp_path / "one" / "shards").glob("*.bin"))
    assert on_disk == 2 * len(expected)  # two bytes a token
    whole = prepare_shards([str(corpus)], tiny_tokenizer, tmp_path / "whole", progress=False)
    assert len(whole["shards"]) == 1 and PreparedCorpus(tmp_path / "whole").read(0, c.tokens).tolist() == expected
    src = one["sources"][0]
    assert (src["tokens"], src["documents"], src["chars"]) == (len(expected), len(docs), sum(map(len, docs)))
    assert one["tokenizer"]["vocab_size"] == len(tiny_tokenizer) and one["settings"]["shard_bytes"] == 2048


def test_dtype_is_the_smallest_that_holds_the_vocabulary(tmp_path, shared_data, docs):
    from zhllama.tokenizer.load import load_tokenizer

    assert [token_dtype(n) for n in (32_000, 55_296, 65_536, 65_537, 151_646)] == [
        "uint16", "uint16", "uint16", "uint32", "uint32"]
    qwen = load_tokenizer(shared_data / "tokenizers" / "qwen2")
    (tmp_path / "c.txt").write_text("\n".join(docs[:20]) + "\n", encoding="utf-8")
    index = prepare_shards([str(tmp_path / "c.txt")], qwen, tmp_path / "q", progress=False)
    assert index["dtype"] == "uint32"
    assert PreparedCorpus(tmp_path / "q", qwen).read(0, 50).tolist() == [
        i for d in docs[:20] for i in doc_ids(qwen, d)][:50]


def test_rerun_keeps_finished_shards_and_redoes_unfinished_ones(tmp_path, corpus, tiny_tokenizer, monkeypatch):
    reference = tmp_path / "ref"
    prepare_shards([str(corpus)], tiny_tokenizer, reference, settings=SMALL, progress=False)
    out = tmp_path / "out"
    prepare_shards([str(corpus)], tiny_tokenizer, out, settings=SMALL, progress=False)
    shards = out / "shards"
    (out / "index.json").unlink()  # what a kill before the end leaves: no index
    (shards / "00002.json").unlink()  # killed after writing the tokens, before marking the shard finished
    with open(shards / "00003.bin", "r+b") as f:  # a torn file under a stale marker
        f.truncate(10)
    (shards / f".00004.bin.{2 ** 22 + 7}.k1ll3d00.tmp").write_bytes(b"half")  # a dead process's temp file
    written = []
    real = S.write_shard
    monkeypatch.setattr(S, "write_shard", lambda shard, *a, **k: written.append(shard.number) or real(shard, *a, **k))
    index = prepare_shards([str(corpus)], tiny_tokenizer, out, settings=SMALL, progress=False)
    assert sorted(written) == [2, 3] and not index["cached"]
    assert folder_bytes(out) == folder_bytes(reference)
    again = prepare_shards([str(corpus)], tiny_tokenizer, out, settings=SMALL, progress=False)
    assert again["cached"] and sorted(written) == [2, 3]


def test_kill_9_mid_run_then_rerun_gives_the_same_shards(tmp_path, tiny_tokenizer_dir, builtin_text):
    corpus = tmp_path / "big.txt"
    corpus.write_text("\n".join(builtin_text["zh"]) + "\n", encoding="utf-8")
    args = ["data", "prepare", "--tokenizer", str(tiny_tokenizer_dir), "--train-files", str(corpus), "--shard-mb", "0.01"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    cmd = [sys.executable, "-m", "zhllama", *args, "--out", str(tmp_path / "killed")]
    proc = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    shards = tmp_path / "killed" / "shards"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and len(list(shards.glob("*.json"))) < 3:
        time.sleep(0.05)
    if proc.poll() is not None:
        pytest.skip("the preparation finished before it could be killed")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "killed" / "index.json").exists()  # nothing looks finished
    finished = len(list(shards.glob("*.json")))
    assert main([*args, "--out", str(tmp_path / "killed")]) == 0
    assert main([*args, "--out", str(tmp_path / "clean")]) == 0
    assert folder_bytes(tmp_path / "killed") == folder_bytes(tmp_path / "clean")
    assert finished >= 3


def test_bad_lines_name_file_and_line_or_are_skipped_and_counted(tmp_path, docs, tiny_tokenizer):
    good = [json.dumps({"text": d}, ensure_ascii=False) for d in docs[:60]]
    p = tmp_path / "c.jsonl"
    lines = good[:50] + ['{"content": "no text field"}'] + good[50:]
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(ZhllamaError, match=r"c\.jsonl: line 51: no 'text' field"):  # in a later shard of the file
        prepare_shards([str(p)], tiny_tokenizer, tmp_path / "a", settings=SMALL, progress=False)
    binary = tmp_path / "b.txt"
    binary.write_bytes("第一行\n".encode() + b"\x00\x01\x02\xff\n")
    with pytest.raises(ZhllamaError, match=r"b\.txt: line 2: binary data"):
        prepare_shards([str(binary)], tiny_tokenizer, tmp_path / "b", progress=False)
    mixed = tmp_path / "m.txt.gz"
    with gzip.open(mixed, "wb") as f:
        f.write("北京\n".encode() + "上海\n".encode("gbk") + "广州\n".encode())
    with pytest.raises(ZhllamaError, match=r"m\.txt\.gz: line 2: not UTF-8"):
        prepare_shards([str(mixed)], tiny_tokenizer, tmp_path / "m", progress=False)
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n", encoding="utf-8")
    with pytest.raises(ZhllamaError, match=r"empty\.txt: no documents"):
        prepare_shards([str(empty)], tiny_tokenizer, tmp_path / "e", progress=False)
    assert not (tmp_path / "e" / "index.json").exists()
    index = prepare_shards([str(p), str(binary), str(mixed), str(empty)], tiny_tokenizer, tmp_path / "ok",
                           settings=Settings(skip_bad=True), progress=False)
    assert (index["skipped_lines"], index["skipped_files"]) == (3, 1)
    assert index["documents"] == 60 + 1 + 2 and [s["skipped_lines"] for s in index["sources"]] == [1, 1, 1, 0]


def test_parquet_folder_and_glob_inputs(tmp_path, docs, tiny_tokenizer):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "dir").mkdir()
    pq.write_table(pa.table({"content": docs[:30]}), tmp_path / "dir" / "a.parquet")
    (tmp_path / "dir" / "b.txt").write_text("\n".join(docs[30:40]) + "\n", encoding="utf-8")
    (tmp_path / "dir" / "notes.md").write_text("not a corpus file", encoding="utf-8")
    with gzip.open(tmp_path / "c.jsonl.gz", "wt", encoding="utf-8") as f:
        f.write("\n".join(json.dumps({"content": d}, ensure_ascii=False) for d in docs[40:50]) + "\n")
    index = prepare_shards([str(tmp_path / "dir"), str(tmp_path / "*.jsonl.gz")], tiny_tokenizer, tmp_path / "out",
                           settings=Settings(text_field="content"), progress=False)
    assert [s["documents"] for s in index["sources"]] == [40, 10]
    assert [Path(f["path"]).name for f in index["sources"][0]["files"]] == ["a.parquet", "b.txt"]
    c = PreparedCorpus(tmp_path / "out")
    assert c.read(0, c.tokens).tolist() == [i for d in docs[:50] for i in doc_ids(tiny_tokenizer, d)]
    with pytest.raises(ZhllamaError, match=r"a\.parquet: no 'text' column"):
        prepare_shards([str(tmp_path / "dir")], tiny_tokenizer, tmp_path / "x", progress=False)


def test_another_tokenizer_is_refused_naming_both_fingerprints(tmp_path, corpus, tiny_tokenizer, tied_tokenizer_dir):
    from zhllama.tokenizer.load import load_tokenizer

    index = prepare_shards([str(corpus)], tiny_tokenizer, tmp_path / "out", progress=False)
    other = load_tokenizer(tied_tokenizer_dir)
    with pytest.raises(ZhllamaError) as e:
        open_blocks(tmp_path / "out", other, 32, 0.0, 0)
    assert index["tokenizer"]["fingerprint"][:16] in str(e.value)
    assert S.tokenizer_fingerprint(other)[:16] in str(e.value)


def test_mixing_weights_repeat_or_thin_a_source(tmp_path, docs, tiny_tokenizer):
    for name, part in (("a.txt", docs[:100]), ("b.txt", docs[100:200])):
        (tmp_path / name).write_text("\n".join(part) + "\n", encoding="utf-8")
    files = [str(tmp_path / "a.txt"), str(tmp_path / "b.txt")]
    prepare_shards(files, tiny_tokenizer, tmp_path / "even", progress=False)
    prepare_shards(files, tiny_tokenizer, tmp_path / "mixed", weights=[2, 0.5], progress=False)
    even, _ = open_blocks(tmp_path / "even", tiny_tokenizer, 32, 0.0, 0)
    mixed, report = open_blocks(tmp_path / "mixed", tiny_tokenizer, 32, 0.0, 0)
    a_tokens = report["sources"][0]["tokens"]
    a_blocks = -(-a_tokens // 32)  # blocks whose first token is in a.txt
    b_blocks = even["train"].blocks - a_blocks
    order = mixed["train"].order
    assert np.bincount(order < a_blocks, minlength=2)[1] == 2 * a_blocks  # every a block twice
    assert abs((order >= a_blocks).sum() - b_blocks / 2) < 0.2 * b_blocks  # about half the b blocks
    assert [s["weight"] for s in report["sources"]] == [2.0, 0.5] and len(mixed["train"]) == len(order)
    again, _ = open_blocks(tmp_path / "mixed", tiny_tokenizer, 32, 0.0, 0)
    assert (again["train"].order == order).all()  # seeded
    with pytest.raises(ZhllamaError, match="1 weights for 2"):
        prepare_shards(files, tiny_tokenizer, tmp_path / "bad", weights=[1], progress=False)


def test_cli_prepare_then_read(tmp_path, corpus, tiny_tokenizer_dir, capsys):
    out = tmp_path / "prepared"
    args = ["data", "prepare", "--tokenizer", str(tiny_tokenizer_dir), "--train-files", str(corpus), "--out", str(out)]
    assert main(args) == 0
    assert "wrote" in capsys.readouterr().out and (out / "index.json").is_file()
    assert main(args) == 0
    assert "already prepared" in capsys.readouterr().out
    assert main([*args[:-2], "--out", str(corpus)]) == 2  # a file, not a folder: one error line
    assert "zhllama: error:" in capsys.readouterr().err


def test_a_full_disk_mid_shard_leaves_nothing_finished_looking(tmp_path, corpus, tiny_tokenizer, monkeypatch):
    import errno

    real, calls = S.encode_documents, []

    def fill_up(texts, tok):
        calls.append(1)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(texts, tok)

    monkeypatch.setattr(S, "encode_documents", fill_up)
    with pytest.raises(OSError, match="No space left"):
        prepare_shards([str(corpus)], tiny_tokenizer, tmp_path / "out", settings=SMALL, progress=False)
    shards = tmp_path / "out" / "shards"
    assert not (tmp_path / "out" / "index.json").exists() and not (shards / "00002.json").exists()
    assert sorted(p.name for p in shards.iterdir()) == [f"0000{i}.{k}" for i in (0, 1) for k in ("bin", "ends.npy", "json")]
    monkeypatch.setattr(S, "encode_documents", real)
    prepare_shards([str(corpus)], tiny_tokenizer, tmp_path / "out", settings=SMALL, progress=False)
    prepare_shards([str(corpus)], tiny_tokenizer, tmp_path / "ref", settings=SMALL, progress=False)
    assert folder_bytes(tmp_path / "out") == folder_bytes(tmp_path / "ref")

"""The shared path checks every command runs first (zhllama.checks) and the atomic writers that use them."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from zhllama.checks import check_output_path, check_weights_readable, read_text, sweep_stale_temps, temp_prefix
from zhllama.errors import ZhllamaError
from zhllama.io import atomic_dir, write_text_atomic


def test_output_under_a_regular_file_is_named(tmp_path):
    (tmp_path / "somefile").write_text("x")
    for kind in ("file", "folder"):
        with pytest.raises(ZhllamaError, match="somefile is a file, not a folder"):
            check_output_path(tmp_path / "somefile" / "deeper" / "out", kind)


def test_output_of_the_wrong_kind_is_named(tmp_path):
    (tmp_path / "f").write_text("x")
    (tmp_path / "d").mkdir()
    with pytest.raises(ZhllamaError, match="is a file, not a folder"):
        check_output_path(tmp_path / "f", "folder")
    with pytest.raises(ZhllamaError, match="is a folder"):
        check_output_path(tmp_path / "d", "file")
    assert check_output_path(tmp_path / "new" / "x", "folder") == tmp_path / "new" / "x"


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_unwritable_parent_is_named(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o555)
    with pytest.raises(ZhllamaError, match="no permission"):
        check_output_path(ro / "out", "folder")


def test_atomic_writers_refuse_a_path_under_a_file_and_leave_nothing(tmp_path):
    (tmp_path / "somefile").write_text("keep")
    with pytest.raises(ZhllamaError):
        with atomic_dir(tmp_path / "somefile" / "out"):
            pass
    with pytest.raises(ZhllamaError):
        write_text_atomic(tmp_path / "somefile" / "x.txt", "y")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["somefile"]
    assert (tmp_path / "somefile").read_text() == "keep"


def test_truncated_safetensors_is_named(tmp_path):
    import torch
    from safetensors.torch import save_file

    good = tmp_path / "model.safetensors"
    save_file({"w": torch.zeros(64, 64)}, str(good))
    check_weights_readable(tmp_path)
    good.write_bytes(good.read_bytes()[:100])
    with pytest.raises(ZhllamaError, match=r"model\.safetensors is damaged"):
        check_weights_readable(tmp_path)


def test_gbk_text_error_names_line_byte_and_encoding(tmp_path):
    f = tmp_path / "in.txt"
    f.write_bytes("第一行\n".encode("utf-8") + "中文语料".encode("gbk"))
    with pytest.raises(ZhllamaError) as e:
        read_text(f)
    assert f"{f}:2: not utf-8 text (byte 10" in str(e.value) and "--encoding gb18030" in str(e.value)
    f.write_bytes("中文语料".encode("gbk"))
    assert read_text(f, encoding="gbk") == "中文语料"
    with pytest.raises(ZhllamaError, match="unknown text encoding 'klingon'"):
        read_text(f, encoding="klingon")


def test_stale_temps_of_dead_processes_are_swept_live_ones_kept(tmp_path):
    out = tmp_path / "model"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    stale_dir = tmp_path / f".model.{dead_pid}.abc12345.partial"
    stale_dir.mkdir()
    (stale_dir / "weights").write_text("half")
    stale_file = tmp_path / f".model.{dead_pid}.xyz_9876.png"
    stale_file.write_text("half")
    mine = tmp_path / (temp_prefix(out) + "q1w2e3r4.partial")
    mine.mkdir()
    other = tmp_path / f".other.{dead_pid}.abcdefgh.partial"
    other.mkdir()
    removed = sweep_stale_temps(out)
    assert sorted(p.name for p in removed) == sorted([stale_dir.name, stale_file.name])
    assert mine.exists() and other.exists() and not stale_dir.exists() and not stale_file.exists()


def test_atomic_dir_sweeps_a_killed_runs_partial(tmp_path):
    out = tmp_path / "tok"
    code = ("import os, sys; from zhllama.io import atomic_dir\n"
            f"with atomic_dir({str(out)!r}) as tmp:\n"
            "    (tmp / 'a').write_text('x'); os._exit(9)\n")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 9
    assert [p.name.endswith(".partial") for p in tmp_path.iterdir()] == [True]  # killed: its partial remains
    with atomic_dir(out) as tmp:
        (tmp / "b").write_text("y")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tok"]
    assert [p.name for p in out.iterdir()] == ["b"]


def test_busy_port_is_a_one_line_error():
    import socket

    from zhllama.checks import check_port_free

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(ZhllamaError, match=f"cannot listen on 127.0.0.1:{port}"):
            check_port_free("127.0.0.1", port)
    check_port_free("127.0.0.1", port)  # free again once closed


def test_gbk_recipe_is_named(tmp_path):
    from zhllama.config import read_yaml

    recipe = tmp_path / "r.yaml"
    recipe.write_bytes("name: 中文配方\n".encode("gbk"))
    with pytest.raises(ZhllamaError, match=r"r\.yaml:1: not utf-8 text"):
        read_yaml(recipe)

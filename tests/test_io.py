import os
import stat

import pytest

from zhllama.errors import ZhllamaError
from zhllama.io import atomic_dir, write_json_atomic


def test_atomic_dir_appears_only_when_complete(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(RuntimeError):
        with atomic_dir(out) as tmp:
            (tmp / "half.bin").write_text("x")
            raise RuntimeError("interrupted")
    assert not out.exists() and not list(tmp_path.iterdir())
    with atomic_dir(out) as tmp:
        (tmp / "done.txt").write_text("ok")
    assert (out / "done.txt").read_text() == "ok"


def test_atomic_dir_refuses_existing_unless_overwrite(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old").write_text("keep")
    with pytest.raises(ZhllamaError, match="already exists"):
        with atomic_dir(out):
            pass
    assert (out / "old").read_text() == "keep"
    with atomic_dir(out, overwrite=True) as tmp:
        (tmp / "new").write_text("n")
    assert sorted(p.name for p in out.iterdir()) == ["new"]


def test_outputs_get_ordinary_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        with atomic_dir(tmp_path / "d") as tmp:
            write_json_atomic(tmp / "m.json", {"a": 1})
        assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o755
        assert stat.S_IMODE((tmp_path / "d" / "m.json").stat().st_mode) == 0o644
    finally:
        os.umask(old)


def test_read_json_names_file_and_line(tmp_path):
    from zhllama.io import read_json

    p = tmp_path / "config.json"
    p.write_text('{\n  "a": 1,\n  oops\n}')
    with pytest.raises(ZhllamaError, match=r"config.json:3: not valid JSON") as e:
        read_json(p, "re-save it")
    assert e.value.hint == "re-save it"
    p.write_text('{"a": [1, 2]}')
    assert read_json(p, "x") == {"a": [1, 2]}


def test_atomic_file_replaces_only_when_complete(tmp_path):
    from zhllama.io import atomic_file

    out = tmp_path / "m.bin"
    out.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_file(out, suffix=".partial") as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert out.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["m.bin"]
    with atomic_file(out) as tmp:
        tmp.write_text("new")
    assert out.read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["m.bin"]

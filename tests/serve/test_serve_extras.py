"""`zhllama webui` without the optional ``webui`` extra: one line naming the extra, before any model is loaded."""

from __future__ import annotations

import sys

from zhllama.cli import main


def test_webui_without_gradio_names_the_extra(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "gradio", None)  # `import gradio` now raises ImportError
    code = main(["webui", "--model", str(tmp_path / "no-such-model")])
    err = capsys.readouterr().err
    assert code == 2
    assert "pip install 'zhllama[webui]'" in err
    assert "no-such-model" not in err  # refused before the model was looked at
    assert len(err.strip().splitlines()) == 1

import subprocess
import sys

from zhllama.cli import main


def test_help_lists_stage_commands(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "model" in out


def test_console_script_runs_help():
    r = subprocess.run([sys.executable, "-m", "zhllama", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "zhllama" in r.stdout


def test_user_error_is_one_line_exit_2(tmp_path, capsys):
    code = main(["model", "init", "--tokenizer", str(tmp_path / "missing"), "--out", str(tmp_path / "m")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("zhllama: error:") and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "m").exists()

"""The evaluation registry: one entry per ``zhllama eval NAME`` (schema, run, help) drives the command."""

from __future__ import annotations

import argparse
import dataclasses
import json

import pytest

from zhllama.cli import main
from zhllama.config.cli_args import _options
from zhllama.eval.registry import EVAL_TASKS


def eval_parser():
    from zhllama.cli import build_parser

    parser = build_parser()
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices["eval"]


def test_each_registered_task_is_a_command_with_its_schemas_options():
    sub = next(a for a in eval_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert list(sub.choices) == list(EVAL_TASKS) == ["ppl", "mc", "compare", "passkey", "reward", "report"]
    for name, task in EVAL_TASKS.items():
        assert task.name == name and task.help and task.description
        assert {a.dest for a in sub.choices[name]._actions} - {"help"} == {o.dest for o in _options(task.schema)}, name


def test_the_registered_run_gets_the_schema_built_from_the_command_line(monkeypatch, tmp_path, capsys):
    """Replacing an entry replaces the command: a new benchmark is its module plus one registry line."""
    from zhllama.eval.config import PplConfig
    from zhllama.eval.task import EvalTask

    seen = []

    def fake_run(cfg):
        seen.append(cfg)
        print(json.dumps({"stride": cfg.stride}))
        return 0

    monkeypatch.setitem(EVAL_TASKS, "ppl", dataclasses.replace(EVAL_TASKS["ppl"], run=fake_run))
    monkeypatch.setitem(EVAL_TASKS, "toy", EvalTask("toy", PplConfig, fake_run, "a toy benchmark", "A toy benchmark."))
    assert main(["eval", "ppl", "--model", "m", "--text", "t.txt", "--stride", "7"]) == 0
    assert main(["eval", "toy", "--model", "m2", "--text", "t.txt"]) == 0
    assert [type(c) for c in seen] == [PplConfig, PplConfig] and seen[0].stride == 7 and seen[1].load.model == "m2"
    assert capsys.readouterr().out.splitlines()[0] == '{"stride": 7}'


def test_a_benchmark_in_a_known_csv_shape_is_one_registry_entry(monkeypatch, ceval_dir):
    """The C-Eval reader, file names and header checks come from the entry: a renamed copy reads the same folder."""
    from zhllama.errors import ZhllamaError
    from zhllama.eval.mc_benchmarks import MC_BENCHMARKS
    from zhllama.eval.mc_data import load_task

    ceval = MC_BENCHMARKS["ceval"]
    monkeypatch.setitem(MC_BENCHMARKS, "toy", dataclasses.replace(ceval, name="toy"))
    toy, real = load_task("toy", ceval_dir, "val", shots=1), load_task("ceval", ceval_dir, "val", shots=1)
    assert toy == real and toy
    assert ceval.header("val") == "id,question,A,B,C,D,answer,explanation" and ceval.header("test") == \
        "id,question,A,B,C,D,explanation"
    assert MC_BENCHMARKS["cmmlu"].header("test") == ",Question,A,B,C,D,Answer"
    monkeypatch.setitem(MC_BENCHMARKS, "toy", dataclasses.replace(ceval, name="toy", subjects={"other": ("其他", ())}))
    with pytest.raises(ZhllamaError, match=r"unknown TOY subject .*e\.g\. other_val\.csv"):
        load_task("toy", ceval_dir, "val")

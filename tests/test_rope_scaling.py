"""RoPE scaling is one typed value, parsed once where it enters: a flag, a recipe key, zhllama.json."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest

from zhllama.config import from_dict, to_dict
from zhllama.errors import ZhllamaError
from zhllama.meta import read_meta, write_meta
from zhllama.rope_scaling import RopeScaling
from zhllama.train.config import TrainConfig


def test_the_text_is_parsed_into_the_value_and_written_back_canonically():
    assert RopeScaling.from_text("YaRN:4.0") == RopeScaling("yarn", 4.0) and str(RopeScaling("yarn", 4.0)) == "yarn:4"
    assert RopeScaling.from_text("dynamic:2") == RopeScaling.from_text("ntk:2") == RopeScaling("dynamic", 2.0)
    assert str(RopeScaling.from_text("dynamic:2.5")) == "ntk:2.5"


@pytest.mark.parametrize("spec,message", [("cubic:2", "unknown kind 'cubic'"), ("linear:x", "the factor must be a number"),
                                          ("yarn:1", "the factor must be above 1"), ("ntk:inf", "the factor must be above 1")])
def test_a_bad_value_names_the_field_it_came_from(spec, message):
    with pytest.raises(ZhllamaError, match=f"r.yaml.pt.rope_scaling '{spec}': {message}"):
        from_dict(TrainConfig, {"rope_scaling": spec}, "r.yaml.pt")


def test_a_config_field_holds_the_value_and_writes_its_text():
    cfg = from_dict(TrainConfig, {"rope_scaling": "linear:4"})
    assert cfg.rope_scaling == RopeScaling("linear", 4.0) and to_dict(cfg)["rope_scaling"] == "linear:4"
    assert asdict(cfg)["rope_scaling"] == {"rope_type": "linear", "factor": 4.0}


def test_training_takes_linear_and_yarn_only():
    cfg = TrainConfig(model="m", train_files=["t"], output_dir="o", rope_scaling=RopeScaling.from_text("ntk:2"))
    with pytest.raises(ZhllamaError, match=r"--rope-scaling 'ntk:2': unknown kind 'ntk' \(use linear:F, yarn:F"):
        cfg.check("pt")


def test_zhllama_json_is_an_edge_too(tmp_path):
    write_meta(tmp_path, rope_scaling=RopeScaling("yarn", 2.0))
    assert json.loads((tmp_path / "zhllama.json").read_text())["rope_scaling"] == "yarn:2"
    assert read_meta(tmp_path).rope_scaling == RopeScaling("yarn", 2.0)
    (tmp_path / "zhllama.json").write_text('{"rope_scaling": "yarn:0.5"}')
    with pytest.raises(ZhllamaError, match=r"zhllama.json: rope_scaling 'yarn:0.5': the factor must be above 1"):
        read_meta(tmp_path)


def test_a_model_config_says_its_scaling():
    assert RopeScaling.of_parameters({"rope_type": "yarn", "factor": 4.0, "rope_theta": 1e4}) == RopeScaling("yarn", 4.0)
    assert RopeScaling.of_parameters({"type": "linear", "factor": 2}) == RopeScaling("linear", 2.0)
    assert RopeScaling.of_parameters({"rope_type": "default"}) is None and RopeScaling.of_parameters(None) is None
    assert RopeScaling.of_parameters({"rope_type": "llama3", "factor": 8.0}) is None


def test_a_recipe_key_is_parsed_once_into_the_stage_config(tmp_path):
    from zhllama.pipeline import parse_recipe, plan

    r = parse_recipe({"base_model": "x/y", "run_dir": str(tmp_path / "run"),
                      "pt": {"train_files": ["a.txt"], "rope_scaling": "linear:2"}}, root=tmp_path)
    (pt,) = plan(r)
    assert pt.settings.train.rope_scaling == RopeScaling("linear", 2.0)
    with pytest.raises(ZhllamaError, match=r"recipe.pt.rope_scaling 'cubic:2': unknown kind 'cubic'"):
        parse_recipe({"base_model": "x/y", "pt": {"train_files": ["a.txt"], "rope_scaling": "cubic:2"}})

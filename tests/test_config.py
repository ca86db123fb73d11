import argparse
from dataclasses import dataclass, field

import pytest

from zhllama.config import add_dataclass_args, apply_cli_overrides, from_dict, load_yaml
from zhllama.errors import ZhllamaError


@dataclass
class Lora:
    rank: int = 8
    targets: list[str] = field(default_factory=lambda: ["q_proj"])


@dataclass
class Recipe:
    model: str
    learning_rate: float = 1e-4
    full: bool = False
    lora: Lora = field(default_factory=Lora)


def test_nested_recipe_is_typed():
    r = from_dict(Recipe, {"model": "m", "learning_rate": "2e-4", "lora": {"rank": 16, "targets": "v_proj"}})
    assert r.learning_rate == 2e-4 and r.lora.rank == 16 and r.lora.targets == ["v_proj"]


def test_unknown_key_names_nearest_valid_key():
    with pytest.raises(ZhllamaError) as e:
        from_dict(Recipe, {"model": "m", "learning_rat": 1})
    assert "learning_rat" in str(e.value) and "learning_rate" in str(e.value)


def test_wrong_types_and_missing_keys_are_named():
    with pytest.raises(ZhllamaError, match=r"config.lora.rank: expected a whole number"):
        from_dict(Recipe, {"model": "m", "lora": {"rank": 1.5}})
    with pytest.raises(ZhllamaError, match="missing required key 'model'"):
        from_dict(Recipe, {})
    with pytest.raises(ZhllamaError, match="expected true or false"):
        from_dict(Recipe, {"model": "m", "full": "maybe"})


def test_yaml_errors_name_file_and_line(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("model: m\nlora: [1,\n")
    with pytest.raises(ZhllamaError, match=r"r.yaml: line \d+"):
        load_yaml(p, Recipe)


def test_cli_flags_override_recipe():
    parser = argparse.ArgumentParser()
    add_dataclass_args(parser, Recipe)
    args = parser.parse_args(["--learning-rate", "3e-4", "--full"])
    r = apply_cli_overrides(Recipe(model="m"), args)
    assert r.learning_rate == 3e-4 and r.full is True and r.model == "m"

"""Recipe sections are the stages' own schemas: a bad key or value is refused when the recipe is read."""

from __future__ import annotations

import pytest

from zhllama.errors import ZhllamaError
from zhllama.pipeline import parse_recipe


def test_tokenizer_options_are_checked_against_tokenizer_train():
    r = parse_recipe({"base_model": "x/y", "tokenizer": {"corpus": ["a.txt"], "options": {"character_coverage": 0.98}}})
    assert r.tokenizer.options.character_coverage == 0.98 and r.tokenizer.options.shuffle is True
    with pytest.raises(ZhllamaError, match=r"tokenizer.options: unknown key 'charater_coverage'.*'character_coverage'"):
        parse_recipe({"base_model": "x/y", "tokenizer": {"corpus": ["a.txt"], "options": {"charater_coverage": 0.98}}})
    with pytest.raises(ZhllamaError, match=r"unknown key 'out'"):  # the pipeline sets it
        parse_recipe({"base_model": "x/y", "tokenizer": {"corpus": ["a.txt"], "options": {"out": "somewhere"}}})


@pytest.mark.parametrize("section,value,where", [
    ("tokenizer", {"path": "tok", "mode": "append"}, "tokenizer.mode: 'append' is not one of"),
    ("tokenizer", {"path": "tok", "model_type": "wordpiece"}, "tokenizer.model_type: 'wordpiece' is not one of"),
    ("resize", {"init": "zeros"}, "resize.init: 'zeros' is not one of"),
    ("resize", {"pad_to_multiple_of": 0}, "resize.pad_to_multiple_of 0 is out of range: it must be at least 1"),
    ("export", {"outtype": "q3_k"}, "export.outtype: 'q3_k' is not one of"),
    ("merge", {"max_shard_sise": "1GB"}, "did you mean 'max_shard_size'"),
])
def test_stage_settings_are_validated_on_reading(section, value, where):
    data = {"base_model": "x/y", "tokenizer": {"path": "tok"}, section: value}
    with pytest.raises(ZhllamaError, match=where):
        parse_recipe(data)


def test_base_section_is_model_init_shape():
    from dataclasses import fields

    from zhllama.model.init import ModelShape

    r = parse_recipe({"base": {"corpus": ["a.txt"], "hidden_size": 64, "rope_theta": 500000.0}})
    assert r.base.hidden_size == 64 and r.base.rope_theta == 500000.0
    assert {f.name for f in fields(ModelShape)} <= {f.name for f in fields(r.base)}

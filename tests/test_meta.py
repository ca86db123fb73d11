"""zhllama.json: one reader, one writer, typed fields, unknown keys kept."""

from __future__ import annotations

import json

import pytest

from zhllama.errors import ZhllamaError
from zhllama.meta import META_FILE, ModelMeta, read_meta, write_meta


def test_missing_file_reads_as_empty(tmp_path):
    assert read_meta(tmp_path) == ModelMeta()
    assert read_meta("meta-llama/Llama-2-7b-hf").template is None  # a hub id has none


def test_write_updates_and_keeps_other_fields(tmp_path):
    write_meta(tmp_path, stage="sft", template="alpaca", tokenizer_size=1200, vocab_size=1216, pad_to_multiple_of=64)
    (tmp_path / META_FILE).write_text(json.dumps({**json.loads((tmp_path / META_FILE).read_text()), "note": "x"}))
    meta = write_meta(tmp_path, template="chatml")
    assert meta == read_meta(tmp_path)
    assert (meta.stage, meta.template, meta.vocab_size, meta.extra) == ("sft", "chatml", 1216, {"note": "x"})
    on_disk = json.loads((tmp_path / META_FILE).read_text())
    assert on_disk == {"note": "x", "stage": "sft", "template": "chatml", "tokenizer_size": 1200, "vocab_size": 1216,
                       "pad_to_multiple_of": 64}  # None fields are not written


@pytest.mark.parametrize("data,match", [
    ({"vocab_size": "1216"}, "'vocab_size' should be int"),
    ({"template": 3}, "'template' should be str"),
    ({"lora": "yes"}, "'lora' should be bool"),
    ({"loras": ["a", 1]}, "'loras' should be a list of strings"),
    ([1, 2], "expected a JSON object"),
])
def test_malformed_file_is_a_one_line_error(tmp_path, data, match):
    (tmp_path / META_FILE).write_text(json.dumps(data))
    with pytest.raises(ZhllamaError, match=match):
        read_meta(tmp_path)


def test_writer_rejects_unknown_fields_and_bad_types(tmp_path):
    with pytest.raises(TypeError, match="vocab"):
        write_meta(tmp_path, vocab=5)
    with pytest.raises(ZhllamaError, match="'tokenizer_size' should be int"):
        write_meta(tmp_path, tokenizer_size=12.5)
    assert not (tmp_path / META_FILE).exists()


def test_pipeline_eval_asks_in_the_template_the_final_model_records(tmp_path):
    from dataclasses import replace

    from zhllama.pipeline.evaluate import EvalPlan, final_template

    final = tmp_path / "final"
    settings = EvalPlan(max_chars=100, max_examples=1, question=None, template="alpaca", final=str(final),
                        before_sft=str(tmp_path / "pt"), scored={})
    assert final_template(settings) == "alpaca"  # nothing recorded: the pipeline's setting
    write_meta(final, template="chatml")
    assert final_template(settings) == "chatml"
    assert final_template(replace(settings, before_sft=None, template="none")) == "none"  # not instruction-tuned

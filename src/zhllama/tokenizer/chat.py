"""A tokenizer's chat template as Jinja: zhllama's own templates for ``apply_chat_template``, vLLM and llama.cpp."""

from __future__ import annotations

from pathlib import Path

from ..io import read_json, write_json_atomic
from ..meta import resolve_template_name
from ..templates import encode_plain_text, get_template
from .load import load_tokenizer


def dummy_prefix_separator(tokenizer) -> str:
    """" " when the tokenizer puts SentencePiece's ``▁`` before each text it encodes, else ""."""
    ids = encode_plain_text(tokenizer, "a")
    return " " if ids and tokenizer.convert_ids_to_tokens(ids[0]).startswith("▁") else ""


def set_chat_template(target, template: str | None = None):
    """Give a tokenizer, or the tokenizer files in a model/tokenizer folder, zhllama's chat template as Jinja.

    ``template`` defaults to what ``zhllama chat`` uses for the folder (its ``zhllama.json``'s
    template, else ``none``), so ``apply_chat_template``, vLLM and llama.cpp prompt the model with
    the ids zhllama does.  ``split_special_tokens`` is turned off so the template's
    ``{{ bos_token }}``/``{{ eos_token }}`` become tokens.  Returns the tokenizer or the folder.
    """
    if not isinstance(target, (str, Path)):
        target.chat_template = get_template(template or "none").jinja(dummy_prefix_separator(target))
        target.split_special_tokens = False
        return target
    folder = Path(target)
    if template is None:
        template = resolve_template_name(folder)
    jinja = get_template(template).jinja(dummy_prefix_separator(load_tokenizer(folder)))
    config_path = folder / "tokenizer_config.json"
    config = read_json(config_path, "fix or remove the file") if config_path.is_file() else {}
    config.update(chat_template=jinja, split_special_tokens=False)
    write_json_atomic(config_path, config)
    if (folder / "chat_template.jinja").is_file():  # Hugging Face reads this file before the config's key
        (folder / "chat_template.jinja").write_text(jinja, encoding="utf-8")
    return folder

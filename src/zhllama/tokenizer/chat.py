"""A tokenizer's chat template as Jinja: zhllama's own templates for ``apply_chat_template``, vLLM and llama.cpp."""

from __future__ import annotations

from pathlib import Path

from ..io import read_json, write_json_atomic
from ..templates import chat_template_jinja, dummy_prefix_separator
from .load import load_tokenizer

__all__ = ["dummy_prefix_separator", "set_chat_template"]


def set_chat_template(target, template: str):
    """Give a tokenizer, or the tokenizer files in a model/tokenizer folder, the chat template as Jinja.

    ``template`` is the one the model is prompted with (``zhllama.model.families.resolve_template``
    picks it for a folder), so ``apply_chat_template``, vLLM and llama.cpp prompt the model with the
    ids zhllama does; ``native`` keeps the tokenizer's own.  ``split_special_tokens`` is turned off
    so the template's ``{{ bos_token }}``/``{{ eos_token }}`` become tokens.  Returns the tokenizer or
    the folder.
    """
    if not isinstance(target, (str, Path)):
        target.chat_template = chat_template_jinja(target, template)
        target.split_special_tokens = False
        return target
    folder = Path(target)
    jinja = chat_template_jinja(load_tokenizer(folder), template)
    config_path = folder / "tokenizer_config.json"
    config = read_json(config_path, "fix or remove the file") if config_path.is_file() else {}
    config.update(chat_template=jinja, split_special_tokens=False)
    write_json_atomic(config_path, config)
    if (folder / "chat_template.jinja").is_file():  # Hugging Face reads this file before the config's key
        (folder / "chat_template.jinja").write_text(jinja, encoding="utf-8")
    return folder

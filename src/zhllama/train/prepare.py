"""Load the base model and the training tokenizer, check that they fit, resize when needed.

The checks compare the actual files: the model folder's own tokenizer (the *base* tokenizer), the
tokenizer given for training and the embedding matrix.  Nothing here knows that LLaMA has 32,000
tokens or Chinese-LLaMA-2 55,296.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..errors import ZhllamaError
from ..model.load import check_model_dir, is_local, load_tokenizer

log = logging.getLogger(__name__)


def model_source(path: str) -> str:
    """A checked local folder or a hub id, as a string for ``from_pretrained``."""
    return str(check_model_dir(path)) if is_local(path) else path


def load_base_tokenizer(model_src: str):
    """The tokenizer that ships with the model, or None when the folder has none."""
    local = Path(model_src)
    if local.is_dir() and not (local / "tokenizer.json").exists() and not (local / "tokenizer_config.json").exists():
        return None
    try:
        return load_tokenizer(model_src)
    except ZhllamaError:
        if local.is_dir():
            return None
        raise


def first_difference(tokenizer, base_tokenizer) -> int | None:
    """The first id where the two vocabularies disagree (over the base's ids), or None."""
    n = min(len(tokenizer), len(base_tokenizer))
    ours = tokenizer.convert_ids_to_tokens(list(range(n)))
    theirs = base_tokenizer.convert_ids_to_tokens(list(range(n)))
    for i, (a, b) in enumerate(zip(ours, theirs)):
        if a != b:
            return i
    return None


def check_tokenizer_extends_base(tokenizer, base_tokenizer, tok_src: str, model_src: str) -> None:
    """The training tokenizer must keep every base id and may only add tokens after them."""
    if len(tokenizer) < len(base_tokenizer):
        raise ZhllamaError(
            f"tokenizer {tok_src} has {len(tokenizer):,} tokens but the model's own tokenizer in {model_src} has "
            f"{len(base_tokenizer):,}: the model was trained with a larger vocabulary",
            "drop --tokenizer to use the model's tokenizer, or give the tokenizer the model was trained with")
    diff = first_difference(tokenizer, base_tokenizer)
    if diff is not None:
        ours, theirs = tokenizer.convert_ids_to_tokens(diff), base_tokenizer.convert_ids_to_tokens(diff)
        raise ZhllamaError(
            f"tokenizer {tok_src} does not extend the model's tokenizer: id {diff} is {ours!r} there but "
            f"{theirs!r} in {model_src}",
            "build it with `zhllama tokenizer merge` on the base model's tokenizer.model (new pieces go after the old ones)")


def load_for_training(model: str, tokenizer: str | None, dtype, resize_init: str = "subword-mean",
                      pad_vocab_to_multiple_of: int | None = None):
    """Return ``(model, tokenizer, tokenizer_source, vocab_report)``.

    When the tokenizer has more tokens than the embedding matrix has rows, ``embed_tokens`` and
    ``lm_head`` are resized and the new rows initialised from the base model
    (:func:`zhllama.model.resize.resize_embeddings`).
    """
    from transformers import AutoModelForCausalLM

    model_src = model_source(model)
    base_tok = load_base_tokenizer(model_src)
    tok_src = tokenizer or model_src
    tok = load_tokenizer(tok_src) if tokenizer else base_tok
    if tok is None:
        raise ZhllamaError(f"{model_src} has no tokenizer files", "pass --tokenizer DIR")
    if base_tok is not None and tokenizer:
        check_tokenizer_extends_base(tok, base_tok, tok_src, model_src)
    try:
        net = AutoModelForCausalLM.from_pretrained(model_src, dtype=dtype)
    except OSError as e:
        raise ZhllamaError(f"cannot load model {model_src}: {str(e).splitlines()[0]}", "check the path or hub id") from None
    report = fit_embeddings(net, tok, base_tok, model_src, tok_src, resize_init, pad_vocab_to_multiple_of)
    return net, tok, tok_src, report


def fit_embeddings(net, tok, base_tok, model_src: str, tok_src: str, init: str, pad_to: int | None) -> dict:
    """Resize the embeddings to the tokenizer when it is larger (or rows must be padded)."""
    rows = net.get_input_embeddings().weight.shape[0]
    report = {"tokenizer": tok_src, "tokenizer_size": len(tok), "embedding_rows_before": rows, "resized": False}
    needs_pad = bool(pad_to) and rows % pad_to != 0
    if len(tok) <= rows and not needs_pad:
        report["embedding_rows"] = rows
        return report
    if base_tok is None:
        raise ZhllamaError(
            f"tokenizer {tok_src} has {len(tok):,} tokens but {model_src} has {rows:,} embedding rows and no "
            "tokenizer of its own to initialise the new rows from",
            "copy the base model's tokenizer files into the model folder")
    from ..model.resize import resize_embeddings

    log.info("resizing embeddings %d -> %d rows (%s init)", rows, len(tok), init)
    resize_report = resize_embeddings(net, tok, base_tok, init=init, pad_to_multiple_of=pad_to)
    report.update(resized=True, embedding_rows=net.get_input_embeddings().weight.shape[0], init=init,
                  resize=resize_report)
    return report


def save_tokenizer(tok_src: str, tokenizer, dst: str | Path) -> None:
    """Copy the tokenizer files (tokenizer.model included) from a folder, or save a hub tokenizer."""
    from ..tokenizer.hf import copy_tokenizer_files

    if Path(tok_src).is_dir():
        copy_tokenizer_files(tok_src, dst)
    else:
        tokenizer.save_pretrained(str(dst))

"""Load the base model and the training tokenizer, check that they fit, resize when needed.

The checks compare the actual files: the model folder's own tokenizer (the *base* tokenizer), the
tokenizer given for training and the embedding matrix.  Nothing here knows that LLaMA has 32,000
tokens or Chinese-LLaMA-2 55,296.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..errors import ZhllamaError

log = logging.getLogger(__name__)


def load_for_training(model: str, tokenizer: str | None, dtype, resize_init: str = "subword-mean",
                      pad_vocab_to_multiple_of: int | None = None, loader=None, options: dict | None = None):
    """Return ``(model, tokenizer, tokenizer_source, vocab_report)``.

    ``options`` are :func:`zhllama.model.load.load_causal_lm`'s (quantization, attention kernel).

    When the tokenizer has more tokens than the embedding matrix has rows, ``embed_tokens`` and
    ``lm_head`` are resized and the new rows initialised from the base model
    (:func:`zhllama.model.resize.resize_embeddings`).  So are the rows of new tokens that fit in a
    padded matrix (Qwen2's 151,936 rows for 151,665 tokens): no token has trained them yet.  ``loader(source, dtype)`` reads the model
    (default :func:`zhllama.model.load.load_causal_lm`; a reward model uses ``load_sequence_classifier``).
    """
    from ..model.load import check_tokenizer_extends_base, load_causal_lm, model_source
    from ..tokenizer.load import load_base_tokenizer, load_tokenizer

    model_src = model_source(model)
    base_tok = load_base_tokenizer(model_src)
    tok_src = tokenizer or model_src
    tok = load_tokenizer(tok_src) if tokenizer else base_tok
    if tok is None:
        raise ZhllamaError(f"{model_src} has no tokenizer files", "pass --tokenizer DIR")
    if base_tok is not None and tokenizer:
        check_tokenizer_extends_base(tok, base_tok, f"tokenizer {tok_src}", f"the model's tokenizer ({model_src})")
    net = (loader or load_causal_lm)(model_src, dtype, **(options or {}))
    report = fit_embeddings(net, tok, base_tok, model_src, tok_src, resize_init, pad_vocab_to_multiple_of)
    return net, tok, tok_src, report


def fit_embeddings(net, tok, base_tok, model_src: str, tok_src: str, init: str, pad_to: int | None) -> dict:
    """Resize the embeddings to the tokenizer when it is larger (or rows must be padded), and initialise the rows of
    its new tokens even where the rows are already there (a padded matrix)."""
    from ..model.load import embedding_rows

    rows = embedding_rows(net)
    report = {"tokenizer": tok_src, "tokenizer_size": len(tok), "embedding_rows_before": rows, "resized": False}
    needs_pad = bool(pad_to) and rows % pad_to != 0
    new_tokens = base_tok is not None and len(tok) > len(base_tok)
    if len(tok) <= rows and not needs_pad and not new_tokens:
        report["embedding_rows"] = rows
        return report
    if base_tok is None:
        raise ZhllamaError(
            f"tokenizer {tok_src} has {len(tok):,} tokens but {model_src} has {rows:,} embedding rows and no "
            "tokenizer of its own to initialise the new rows from",
            "copy the base model's tokenizer files into the model folder")
    from ..model.resize import resize_embeddings

    log.info("fitting the embeddings to %d tokens, %d new (%d rows before; %s init)", len(tok), len(tok) - len(base_tok),
             rows, init)
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

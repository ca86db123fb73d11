"""Growing a base model's embeddings to an extended tokenizer, initialised from what it knows.

A new piece such as ``▁中国`` was, for the base model, a sequence of pieces it has learnt (``▁``,
``中``, ``国`` or byte pieces).  ``subword-mean`` initialises the new input row with the mean of
those pieces' input embeddings and the new ``lm_head`` row with the mean of their output rows, so the
model starts from a guess of what the piece means instead of from noise.  ``mean`` (every new row =
mean of all old rows, what transformers' ``mean_resizing`` does) and ``random`` (normal with the
model's ``initializer_range``) are there for comparison; the README (Training data and embedding resize) has measured losses.
"""

from __future__ import annotations

import logging
import re
import typing
from dataclasses import dataclass
from typing import Literal

from ..config import option
from ..errors import ZhllamaError

log = logging.getLogger(__name__)

Init = Literal["subword-mean", "mean", "random"]
INITS = typing.get_args(Init)
_BYTE_PIECE = re.compile(r"^<0x[0-9A-Fa-f]{2}>$")


@dataclass(kw_only=True)
class ResizeSettings:
    """How new embedding rows are made: the pipeline's ``resize:`` section."""

    init: Init = option("new rows: mean of the base rows of the pieces each new token splits into (subword-mean), "
                        "mean of all rows (mean), or random", "subword-mean")
    pad_to_multiple_of: int | None = option("round the rows up to a multiple (64/128 for GPU efficiency)", None,
                                            metavar="N", low=1)


@dataclass(kw_only=True)
class ResizeConfig(ResizeSettings):
    """``zhllama model resize``: its options, and the argument of :func:`resize_model`."""

    model: str = option("base model folder (Hugging Face format) or hub id")
    tokenizer: str = option("the extended tokenizer folder (from `zhllama tokenizer merge`)")
    base_tokenizer: str | None = option("the tokenizer the base model was trained with (default: --model's own)", None)
    out: str = option("output folder: the resized model with the extended tokenizer")
    overwrite: bool = option("replace an existing output folder", False)


def base_piece_ids(piece: str, new_tokenizer, base_tokenizer) -> list[int]:
    """The base ids that ``piece`` (a new token) splits into, unknown pieces excluded.

    The piece string is already in the tokenizer's normalised space (``▁`` for a space), so it is
    fed to the base tokenizer's *model* directly: going through text would add a second dummy-prefix
    ``▁`` (or lose the piece's own).  Byte pieces ``<0xNN>`` map to the base byte piece.
    """
    unk = base_tokenizer.unk_token_id
    if _BYTE_PIECE.match(piece):
        idx = base_tokenizer.convert_tokens_to_ids(piece)
        return [] if idx is None or idx == unk else [idx]
    backend = getattr(base_tokenizer, "backend_tokenizer", None)
    if backend is not None:
        ids = [t.id for t in backend.model.tokenize(piece)]
    elif hasattr(base_tokenizer, "encode_normalized"):  # SentencePiece-backed (zhllama.tokenizer.exact)
        ids = base_tokenizer.encode_normalized(piece)
    else:  # a slow tokenizer: encode the text and drop a lone dummy-prefix piece it adds
        text = piece.replace("▁", " ")
        ids = base_tokenizer(text, add_special_tokens=False)["input_ids"]
        if ids and not piece.startswith("▁") and base_tokenizer.convert_ids_to_tokens(ids[0]) == "▁":
            ids = ids[1:]
    return [i for i in ids if i != unk and i is not None]


def _target_rows(n_tokens: int, old_rows: int, multiple: int | None) -> int:
    rows = max(n_tokens, old_rows)
    if multiple is not None:
        if multiple < 1:
            raise ZhllamaError(f"pad_to_multiple_of must be positive, got {multiple}", "use e.g. 64 or 128")
        rows = -(-rows // multiple) * multiple
    return rows


def resize_embeddings(model, new_tokenizer, base_tokenizer, init: str = "subword-mean",
                      pad_to_multiple_of: int | None = None) -> dict:
    """Grow ``embed_tokens`` and ``lm_head`` of ``model`` (in place) to ``len(new_tokenizer)`` rows.

    Rows are rounded up to ``pad_to_multiple_of`` when given (e.g. 128: 55,296 = 432 x 128); the
    extra padding rows (no token uses them) get the mean row (random rows under ``random``).  If the
    model already has more rows than the base tokenizer (padded), the rows that new tokens now use
    are initialised like any new row and the others are kept as they are.
    New rows are initialised by ``init``:

    * ``subword-mean``: each new token's rows = mean of the base rows (input embedding and
      ``lm_head`` separately) of the pieces the base tokenizer splits it into; tokens that split
      into nothing known (special/added tokens, unknowns) fall back to the mean row;
    * ``mean``: every new row = mean of all old rows;
    * ``random``: normal(0, ``config.initializer_range``), what a fresh model would have.

    Never shrinks.  Raises ``ZhllamaError`` when ``new_tokenizer`` does not start with the base
    tokenizer's pieces in order, or when the base tokenizer has more tokens than the model has rows.
    Returns a report: old_rows, new_rows, tokens, init, initialised_from_subwords, fallback_mean,
    padding_rows.
    """
    import torch

    if init not in INITS:
        raise ZhllamaError(f"unknown embedding init '{init}'", f"choose one of: {', '.join(INITS)}")
    from .load import check_tokenizer_extends_base, check_tokenizer_fits, embedding_rows

    check_tokenizer_extends_base(new_tokenizer, base_tokenizer, "the new tokenizer", "the base tokenizer")
    old_rows = embedding_rows(model)
    check_tokenizer_fits(len(base_tokenizer), old_rows, "the base tokenizer", "the model",
                         "give the tokenizer the base model was trained with as the base tokenizer")
    n_tokens = len(new_tokenizer)
    new_rows = _target_rows(n_tokens, old_rows, pad_to_multiple_of)
    report = {"old_rows": old_rows, "new_rows": new_rows, "tokens": n_tokens, "init": init,
              "initialised_from_subwords": 0, "fallback_mean": 0, "padding_rows": max(0, new_rows - max(n_tokens, old_rows))}
    # the new tokens' rows, wherever they are: a padded model (Qwen2: 151,936 rows for 151,646 tokens)
    # already has rows for the first new ids, untrained ones; then the padding past every row
    init_ids = list(range(len(base_tokenizer), n_tokens)) + list(range(max(n_tokens, old_rows), new_rows))
    if not init_ids:
        return report
    inp = model.get_input_embeddings().weight.detach().float().clone()
    out_layer = model.get_output_embeddings()
    tied = out_layer is None or out_layer.weight is model.get_input_embeddings().weight
    out = None if tied else out_layer.weight.detach().float().clone()
    if new_rows > old_rows:
        model.resize_token_embeddings(new_rows, mean_resizing=False)
    new_in, new_out = _new_rows(inp, out, init_ids, n_tokens, init, new_tokenizer, base_tokenizer,
                                getattr(model.config, "initializer_range", 0.02), report)
    with torch.no_grad():
        emb = model.get_input_embeddings().weight
        emb[init_ids] = new_in.to(emb.dtype)
        if not tied:
            head = model.get_output_embeddings().weight
            head[init_ids] = new_out.to(head.dtype)
    log.info("resized embeddings %d -> %d rows (%s: %d from subwords, %d mean)", old_rows, new_rows, init,
             report["initialised_from_subwords"], report["fallback_mean"])
    return report


def _new_rows(inp, out, ids, n_tokens, init, new_tokenizer, base_tokenizer, std, report):
    """The initial values of the new input (and output) rows, in float32."""
    import torch

    ids = list(ids)
    mean_in = inp.mean(0)
    mean_out = out.mean(0) if out is not None else None
    if init == "random":
        g = torch.Generator().manual_seed(0)
        new_in = torch.randn(len(ids), inp.shape[1], generator=g) * std
        new_out = torch.randn(len(ids), inp.shape[1], generator=g) * std if out is not None else None
        return new_in, new_out
    new_in = mean_in.repeat(len(ids), 1)
    new_out = mean_out.repeat(len(ids), 1) if out is not None else None
    pieces = new_tokenizer.convert_ids_to_tokens([i for i in ids if i < n_tokens])
    specials = set(new_tokenizer.all_special_ids)
    for k, (idx, piece) in enumerate(zip(ids, pieces)):
        parts = [] if (init == "mean" or idx in specials) else base_piece_ids(piece, new_tokenizer, base_tokenizer)
        if parts:
            new_in[k] = inp[parts].mean(0)
            if out is not None:
                new_out[k] = out[parts].mean(0)
            report["initialised_from_subwords"] += 1
        else:
            report["fallback_mean"] += 1
    return new_in, new_out


def resize_model(cfg: ResizeConfig) -> dict:
    """Grow ``cfg.model``'s embeddings to ``cfg.tokenizer`` and write model + tokenizer to ``cfg.out``
    atomically; returns :func:`resize_embeddings`' report."""
    from ..checks import check_output_path
    from ..checks import check_output_dir
    from ..io import atomic_dir
    from ..meta import write_meta
    from ..tokenizer.chat import set_chat_template
    from .families import resolve_template
    from ..tokenizer.hf import copy_tokenizer_files
    from ..tokenizer.load import load_tokenizer
    from .load import check_tokenizer_extends_base, load_causal_lm, model_source

    check_output_dir(check_output_path(cfg.out, "folder"), cfg.overwrite)  # cheap checks before loading the model
    source = model_source(cfg.model)
    tokenizer = load_tokenizer(cfg.tokenizer)
    base_tokenizer = load_tokenizer(cfg.base_tokenizer or source)
    check_tokenizer_extends_base(tokenizer, base_tokenizer, "the new tokenizer", "the base tokenizer")
    model = load_causal_lm(source)
    report = resize_embeddings(model, tokenizer, base_tokenizer, init=cfg.init, pad_to_multiple_of=cfg.pad_to_multiple_of)
    with atomic_dir(cfg.out, cfg.overwrite) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        copy_tokenizer_files(cfg.tokenizer, tmp)
        write_meta(tmp, stage="resize", base_model=cfg.model, tokenizer_size=len(tokenizer),
                   vocab_size=report["new_rows"], pad_to_multiple_of=cfg.pad_to_multiple_of)
        set_chat_template(tmp, resolve_template(tmp))
    return report

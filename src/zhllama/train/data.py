"""The datasets and collator each training stage feeds the Trainer."""

from __future__ import annotations

from ..errors import ZhllamaError
from .config import TrainConfig


def expand_files(files: list[str]) -> list[str]:
    """Expand glob patterns (``data/pt/*.txt``) and folders (their corpus files) in sorted order and
    check every file exists (:func:`zhllama.data.sources.expand_source`).

    Every process runs this before any of them waits on another, so a bad path fails on all ranks
    at once instead of leaving the others hanging at a barrier.
    """
    from ..data.sources import expand_source

    return [f for entry in files for f in expand_source(entry)]


def labelled_logits_supported(model) -> bool:
    """Whether the model (or a peft model's base) takes a tensor ``logits_to_keep`` and its loss takes
    ``shift_labels`` (transformers' causal LMs since 4.50), as :func:`~zhllama.data.instructions.labelled_positions` needs."""
    import inspect

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    loss = getattr(base, "loss_function", None)
    return ("logits_to_keep" in inspect.signature(base.forward).parameters and callable(loss)
            and "shift_labels" in inspect.signature(loss).parameters)


def build_stage_data(cfg: TrainConfig, stage: str, tokenizer, labelled_logits_only: bool = False):
    """Return ``(DatasetDict with train/validation, collator, report)`` for ``stage``; ``labelled_logits_only``:
    SFT batches say which positions need logits (see :func:`labelled_logits_supported`)."""
    split = cfg.default_validation_split(stage)
    if stage == "pt":
        from ..data.blocks import BlockCollator, open_blocks
        from ..data.corpora import build_pt_dataset

        if cfg.data:  # prepared by `zhllama data prepare`
            data, report = open_blocks(cfg.data, tokenizer, cfg.block_size, split, cfg.seed)
        else:  # prepared into the cache by the same code
            data, report = build_pt_dataset(cfg.train_files, tokenizer, cfg.block_size, validation_split=split,
                                            cache_dir=cfg.cache_dir, num_proc=cfg.num_proc, text_field=cfg.text_field,
                                            skip_bad=cfg.skip_bad, seed=cfg.seed, progress=True)
        collator = BlockCollator()  # every block is full: no padding at all
    else:
        from ..data.instructions import SftCollator, build_sft_dataset

        data, report = build_sft_dataset(cfg.train_files, tokenizer, cfg.template, cfg.max_length,
                                         validation_split=split, skip_bad=cfg.skip_bad, seed=cfg.seed,
                                         num_proc=cfg.num_proc, cache_dir=cfg.cache_dir)
        import torch

        # a multiple of 8 suits GPU tensor cores; on CPU it would only add padding
        collator = SftCollator(tokenizer, pad_to_multiple_of=8 if torch.cuda.is_available() else None,
                               labelled_logits_only=labelled_logits_only)
    if len(data["train"]) == 0:
        raise ZhllamaError(f"no training examples in {cfg.data or ', '.join(cfg.train_files)}",
                           "check the files (pt: lower --block-size for a short corpus)")
    return data, collator, report


def with_length_column(dataset):
    """Add the ``length`` column group-by-length sampling reads (instead of measuring every item)."""
    if "length" in dataset.column_names:
        return dataset
    return dataset.map(lambda b: {"length": [len(x) for x in b["input_ids"]]}, batched=True, desc="lengths")

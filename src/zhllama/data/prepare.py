"""``PrepareConfig``: the options of ``zhllama data prepare`` (and of a recipe's ``prepare:`` keys)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..config import option
from ..errors import ZhllamaError


@dataclass(kw_only=True)
class PrepareConfig:
    tokenizer: str = option("tokenizer folder (or hub id): the one `train pt` will train with")
    train_files: list[str] = option("corpus files, globs or folders (.txt/.jsonl/.json/.parquet, .gz too); each "
                                    "entry is one source, counted and weighted on its own", metavar="FILE")
    out: str = option("the prepared folder (a killed run continues in it)")
    weights: list[float] = option("mixing weight per train_files entry, applied when training reads the folder "
                                  "(2: twice, 0.5: a seeded half of its blocks); default 1 each", factory=list,
                                  metavar="W")
    text_field: str = option("the text field of .jsonl/.json records, or the Parquet column", "text")
    skip_bad: bool = option("skip bad lines and empty files (counted in index.json) instead of stopping", False)
    num_proc: int = option("tokenizer processes (one shard each at a time)", 1, low=1)
    shard_mb: float = option("text per shard: big .txt/.jsonl files are cut at line starts into shards this size "
                             "(the unit of parallel work and of resuming)", 64.0, positive=True)
    overwrite: bool = option("delete an existing prepared folder first", False)


def prepare(cfg: PrepareConfig, progress: bool = True) -> dict:
    """Prepare ``cfg.out`` (see :mod:`zhllama.data.shards`); return its index (``cached``: it was already made)."""
    import shutil

    from ..checks import check_output_path
    from ..tokenizer.load import load_tokenizer
    from .shards import INDEX_FILE, Settings, prepare_shards

    out = check_output_path(Path(cfg.out), "folder", "out")
    if out.exists() and any(out.iterdir()) and not (out / INDEX_FILE).is_file() and not (out / "shards").is_dir():
        raise ZhllamaError(f"{out} exists and is not a prepared folder", "choose another --out, or pass --overwrite")
    if cfg.overwrite and out.exists():
        shutil.rmtree(out)
    settings = Settings(text_field=cfg.text_field, skip_bad=cfg.skip_bad, shard_bytes=int(cfg.shard_mb * (1 << 20)))
    return prepare_shards(cfg.train_files, load_tokenizer(cfg.tokenizer), out, weights=cfg.weights, settings=settings,
                          num_proc=cfg.num_proc, progress=progress)

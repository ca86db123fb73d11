"""`train pt --data DIR`: prepared shards read by memory map, the same blocks as --train-files, exact resume."""

from __future__ import annotations

import json

import pytest

import zhllama.data.blocks as B
from zhllama.data.shards import prepare_shards
from zhllama.errors import ZhllamaError
from zhllama.train import train


def losses(out):
    history = json.loads((out / "metrics.json").read_text())["log_history"]
    return [h["loss"] for h in history if "loss" in h]


@pytest.fixture()
def batches(monkeypatch):
    """The ``input_ids`` of every training batch, as the collator builds them (accelerate's loader
    reads one batch ahead, so a run of N steps collates N + 1)."""
    seen = []
    real = B.BlockCollator.__call__

    def record(self, features):
        batch = real(self, features)
        seen.append(batch["input_ids"].tolist())
        return batch

    monkeypatch.setattr(B.BlockCollator, "__call__", record)
    return seen


def test_prepared_folder_trains_like_train_files(tmp_path, tiny_model_dir, tiny_tokenizer, pt_corpus, tiny_config,
                                                 batches):
    over = dict(max_steps=4, validation_split=0.0)
    prepare_shards([str(pt_corpus)], tiny_tokenizer, tmp_path / "prepared", progress=False)
    from_files = train(tiny_config(tiny_model_dir, [pt_corpus], tmp_path / "files", **over), "pt")
    files_batches = list(batches)
    batches.clear()
    from_data = train(tiny_config(tiny_model_dir, [], tmp_path / "data", data=str(tmp_path / "prepared"), **over), "pt")
    assert batches == files_batches and len(batches) == 5  # the same blocks in the same order
    assert losses(tmp_path / "data") == losses(tmp_path / "files")
    assert from_data["metrics"]["tokens_seen"] == from_files["metrics"]["tokens_seen"] == 4 * 4 * 64
    report = json.loads((tmp_path / "data" / "metrics.json").read_text())["data"]
    assert report["prepared"] == str(tmp_path / "prepared") and report["dtype"] == "uint16"


def test_resume_reads_the_same_next_batch(tmp_path, tiny_model_dir, tiny_tokenizer, pt_corpus, tiny_config, batches):
    from test_train_resume import interrupt_at

    prepare_shards([str(pt_corpus)], tiny_tokenizer, tmp_path / "prepared", progress=False)
    over = dict(max_steps=6, save_steps=3, batch_size=2, validation_split=0.0, data=str(tmp_path / "prepared"))
    train(tiny_config(tiny_model_dir, [], tmp_path / "straight", **over), "pt")
    straight = list(batches)
    batches.clear()
    with pytest.raises(KeyboardInterrupt):
        train(tiny_config(tiny_model_dir, [], tmp_path / "cut", **over), "pt", callbacks=[interrupt_at(4)])
    assert batches[:4] == straight[:4]
    batches.clear()
    train(tiny_config(tiny_model_dir, [], tmp_path / "cut", resume=True, **over), "pt")
    assert batches[:3] == straight[3:6]  # from checkpoint-3: the 4th batch next, then the rest
    assert len({json.dumps(b) for b in straight[:6]}) == 6


def test_a_folder_prepared_with_another_tokenizer_is_refused(tmp_path, tiny_model_dir, tied_tokenizer_dir, pt_corpus,
                                                             tiny_config):
    from zhllama.tokenizer.load import load_tokenizer

    index = prepare_shards([str(pt_corpus)], load_tokenizer(tied_tokenizer_dir), tmp_path / "other", progress=False)
    with pytest.raises(ZhllamaError, match="prepared with another tokenizer") as e:
        train(tiny_config(tiny_model_dir, [], tmp_path / "run", data=str(tmp_path / "other")), "pt")
    assert index["tokenizer"]["fingerprint"][:16] in str(e.value)
    with pytest.raises(ZhllamaError, match="both 'data' and 'train_files'"):
        train(tiny_config(tiny_model_dir, [pt_corpus], tmp_path / "run", data=str(tmp_path / "other")), "pt")


def test_ranks_read_disjoint_blocks_in_a_seeded_order_per_epoch(tmp_path, tiny_tokenizer, builtin_text):
    """The Trainer's loader on two ranks (accelerate shards the seeded sampler's batches) over the blocks."""
    from accelerate.data_loader import prepare_data_loader
    from torch.utils.data import DataLoader, RandomSampler

    (tmp_path / "c.txt").write_text("\n".join(builtin_text["zh"][:400]) + "\n", encoding="utf-8")
    prepare_shards([str(tmp_path / "c.txt")], tiny_tokenizer, tmp_path / "prepared", progress=False)
    blocks = B.open_blocks(tmp_path / "prepared", tiny_tokenizer, 64, 0.0, 0)[0]["train"]

    def rank_rows(rank: int, epoch: int) -> list[tuple]:
        loader = DataLoader(blocks, batch_size=2, sampler=RandomSampler(blocks), collate_fn=B.BlockCollator())
        loader = prepare_data_loader(loader, num_processes=2, process_index=rank, put_on_device=False,
                                     use_seedable_sampler=True)
        loader.set_epoch(epoch)
        return [tuple(row) for batch in loader for row in batch["input_ids"].tolist()]

    first, second = rank_rows(0, 0), rank_rows(1, 0)
    every = {tuple(blocks[i]["input_ids"].tolist()) for i in range(len(blocks))}
    assert set(first) | set(second) == every
    assert len(set(first) & set(second)) <= 1  # at most the block repeated to even out the last batch
    assert rank_rows(0, 0) == first and rank_rows(0, 1) != first  # seeded, and reshuffled each epoch

"""`zhllama model resize`: the resize stage run alone, from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from zhllama.cli import main

NEW_PIECES = ["中国人民", "▁hello world", "经济发展"]


def write_tokenizer(sp_model: Path, out: Path, new_pieces=(), swap_first_two_normal=False) -> Path:
    """The tiny tokenizer with normal pieces appended (an extension), or with two pieces swapped (not one)."""
    from zhllama.tokenizer import spm as S
    from zhllama.tokenizer.hf import write_hf_tokenizer

    proto = S.load_proto(sp_model)
    low = min(p.score for p in proto.pieces if p.type == S.NORMAL)
    for i, piece in enumerate(new_pieces):
        p = proto.pieces.add()
        p.piece, p.score, p.type = piece, low - 1 - i, S.NORMAL
    if swap_first_two_normal:
        a, b = [p for p in proto.pieces if p.type == S.NORMAL][:2]
        a.piece, b.piece = b.piece, a.piece
    out.mkdir(parents=True)
    S.save_proto(proto, out / "tokenizer.model")
    return write_hf_tokenizer(out / "tokenizer.model", out)


@pytest.fixture(scope="module")
def extended_dir(tmp_path_factory, tiny_sp_model):
    return write_tokenizer(tiny_sp_model, tmp_path_factory.mktemp("ext") / "tok", NEW_PIECES)


def embeddings(model_dir):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(model_dir))
    return model.get_input_embeddings().weight.detach(), model.get_output_embeddings().weight.detach()


def test_resize_writes_a_model_whose_new_rows_are_subword_means(tiny_model_dir, tiny_tokenizer, extended_dir, tmp_path,
                                                               capsys):
    import torch

    from zhllama.model.resize import base_piece_ids
    from zhllama.tokenizer.load import load_tokenizer

    out = tmp_path / "resized"
    code = main(["model", "resize", "--model", str(tiny_model_dir), "--tokenizer", str(extended_dir), "--out", str(out)])
    assert code == 0 and "1,200 -> 1,203 embedding rows" in capsys.readouterr().out
    new = load_tokenizer(out)
    assert len(new) == len(tiny_tokenizer) + len(NEW_PIECES) and (out / "tokenizer.model").is_file()
    old_in, old_out = embeddings(tiny_model_dir)
    emb, head = embeddings(out)
    assert emb.shape[0] == head.shape[0] == len(new)
    assert torch.equal(emb[: len(tiny_tokenizer)], old_in) and torch.equal(head[: len(tiny_tokenizer)], old_out)
    for piece in NEW_PIECES:
        idx = new.convert_tokens_to_ids(piece)
        parts = base_piece_ids(piece, new, tiny_tokenizer)
        assert len(parts) >= 2
        torch.testing.assert_close(emb[idx], old_in[parts].mean(0))
        torch.testing.assert_close(head[idx], old_out[parts].mean(0))
    assert json.loads((out / "zhllama.json").read_text())["stage"] == "resize"


def test_pad_to_multiple_of_and_mean_init(tiny_model_dir, extended_dir, tmp_path):
    import torch

    out = tmp_path / "padded"
    assert main(["model", "resize", "--model", str(tiny_model_dir), "--tokenizer", str(extended_dir), "--out", str(out),
                 "--init", "mean", "--pad-to-multiple-of", "64"]) == 0
    old_in, _ = embeddings(tiny_model_dir)
    emb, _ = embeddings(out)
    assert emb.shape[0] == 1216  # 1,203 tokens rounded up to 19 x 64
    torch.testing.assert_close(emb[1200:], old_in.mean(0).expand(16, -1))


def test_bad_inputs_are_one_line_errors(tiny_model_dir, tiny_sp_model, extended_dir, tmp_path, capsys):
    not_extension = write_tokenizer(tiny_sp_model, tmp_path / "swapped", swap_first_two_normal=True)
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "keep.txt").write_text("x")
    cases = [
        (["--model", str(tmp_path / "missing"), "--tokenizer", str(extended_dir)], "model folder not found"),
        (["--model", str(tiny_model_dir), "--tokenizer", str(not_extension)], "the new tokenizer does not extend the base tokenizer"),
        (["--model", str(tiny_model_dir), "--tokenizer", str(tmp_path)], "holds no tokenizer"),
        (["--model", str(tiny_model_dir), "--tokenizer", str(extended_dir), "--out", str(existing)], "already exists"),
        (["--model", str(tiny_model_dir), "--tokenizer", str(extended_dir), "--pad-to-multiple-of", "0"],
         "--pad-to-multiple-of 0 is out of range: it must be at least 1"),
    ]
    for i, (args, message) in enumerate(cases):
        out = ["--out", str(tmp_path / f"out{i}")] if "--out" not in args else []
        code = main(["model", "resize", *args, *out])
        err = capsys.readouterr().err
        assert code == 2 and message in err, (args, err)
        assert err.startswith("zhllama: error:") and len(err.strip().splitlines()) == 1
        assert not (tmp_path / f"out{i}").exists()
    assert [p.name for p in existing.iterdir()] == ["keep.txt"]

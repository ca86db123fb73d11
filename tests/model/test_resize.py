"""Embedding resize: extension check, row initialisation, and a measured loss comparison."""

from __future__ import annotations

import copy
from collections import Counter
from pathlib import Path

import pytest

from zhllama.errors import ZhllamaError
from zhllama.model.resize import base_piece_ids, resize_embeddings

TEXT = [
    "the cat sat on the mat and the dog sat on the log.",
    "中国人民银行今天发布了新的货币政策报告。",
    "a model that has learnt some text predicts it well.",
    "北京是中国的首都，上海是中国最大的城市。",
    "the quick brown fox jumps over the lazy dog.",
    "人民群众的生活水平不断提高，经济发展稳中向好。",
]


def extend_sp(sp_model: Path, new_pieces: list[str], out_dir: Path) -> Path:
    """Append NORMAL pieces (scores below every existing one) and write the HF tokenizer files."""
    from zhllama.tokenizer import spm as S
    from zhllama.tokenizer.hf import write_hf_tokenizer

    proto = S.load_proto(sp_model)
    have = {p.piece for p in proto.pieces}
    low = min(p.score for p in proto.pieces if p.type == S.NORMAL)
    for i, piece in enumerate(x for x in new_pieces if x not in have):
        p = proto.pieces.add()
        p.piece, p.score, p.type = piece, low - 1 - i, S.NORMAL
    out_dir.mkdir(parents=True, exist_ok=True)
    S.save_proto(proto, out_dir / "tokenizer.model")
    return write_hf_tokenizer(out_dir / "tokenizer.model", out_dir)


def merged_pairs(tokenizer, lines, k: int) -> list[str]:
    """The ``k`` most frequent adjacent normal-piece pairs of ``lines``, as new merged pieces."""
    pairs: Counter = Counter()
    vocab = tokenizer.get_vocab()
    for line in lines:
        toks = tokenizer.convert_ids_to_tokens(tokenizer(line, add_special_tokens=False)["input_ids"])
        for a, b in zip(toks, toks[1:]):
            if not (a.startswith("<0x") or b.startswith("<0x")) and a + b not in vocab:
                pairs[a + b] += 1
    return [p for p, _ in pairs.most_common(k)]


@pytest.fixture(scope="module")
def small_tokenizers(tmp_path_factory):
    from sp_fixtures import train_llama_style_sp
    from zhllama.tokenizer.hf import write_hf_tokenizer
    from zhllama.tokenizer.load import load_tokenizer

    d = tmp_path_factory.mktemp("resize_tok")
    sp = train_llama_style_sp(TEXT * 20, d / "base", 360)
    base = load_tokenizer(write_hf_tokenizer(sp, d / "base_hf"))
    new_dir = extend_sp(sp, merged_pairs(base, TEXT, 40), d / "new_hf")
    return base, load_tokenizer(new_dir), new_dir


def tiny_llama(vocab: int, tokenizer, seed: int = 0):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                      tie_word_embeddings=False, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    return LlamaForCausalLM(cfg)


def stream(tokenizer, lines) -> list[int]:
    ids = []
    for line in lines:
        ids += [tokenizer.bos_token_id] + tokenizer(line, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    return ids


def loss_on(model, ids: list[int]) -> float:
    import torch

    model.eval()
    with torch.no_grad():
        x = torch.tensor([ids])
        return float(model(input_ids=x, labels=x).loss)


@pytest.fixture(scope="module")
def trained(small_tokenizers):
    """A tiny LLaMA that has learnt TEXT with the base tokenizer (a few dozen Adam steps)."""
    import torch

    base, _, _ = small_tokenizers
    model = tiny_llama(len(base), base)
    ids = torch.tensor([stream(base, TEXT)])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 64-wide model: threads only contend on a shared CPU (~70x slower)
    try:
        for _ in range(60):
            opt.zero_grad()
            model(input_ids=ids, labels=ids).loss.backward()
            opt.step()
    finally:
        torch.set_num_threads(threads)
    return model


def test_pieces_split_with_the_base_model_not_through_text(small_tokenizers):
    base, new, _ = small_tokenizers
    added = new.convert_ids_to_tokens(list(range(len(base), len(new))))
    for piece in added:
        parts = base.convert_ids_to_tokens(base_piece_ids(piece, new, base))
        assert "".join(parts) == piece  # exactly the piece: no extra or lost dummy-prefix ▁


def test_subword_mean_rows_are_the_mean_of_the_base_rows(small_tokenizers, trained):
    import torch

    base, new, _ = small_tokenizers
    model = copy.deepcopy(trained)
    old_in = model.get_input_embeddings().weight.detach().clone()
    old_out = model.get_output_embeddings().weight.detach().clone()
    report = resize_embeddings(model, new, base, "subword-mean")
    assert report["old_rows"] == len(base) and report["new_rows"] == len(new)
    assert report["initialised_from_subwords"] == len(new) - len(base) and report["fallback_mean"] == 0
    emb, head = model.get_input_embeddings().weight, model.get_output_embeddings().weight
    assert emb.shape[0] == head.shape[0] == len(new) == model.config.vocab_size
    assert torch.equal(emb[: len(base)], old_in) and torch.equal(head[: len(base)], old_out)
    for idx in range(len(base), len(new)):
        parts = base_piece_ids(new.convert_ids_to_tokens(idx), new, base)
        assert len(parts) >= 2
        torch.testing.assert_close(emb[idx], old_in[parts].mean(0))
        torch.testing.assert_close(head[idx], old_out[parts].mean(0))


def test_subword_mean_gives_lower_loss_than_mean_and_random(small_tokenizers, trained):
    base, new, _ = small_tokenizers
    new_ids = stream(new, TEXT)
    n_new = sum(1 for i in new_ids if i >= len(base))
    assert n_new > len(new_ids) // 10 # the text really uses the new pieces
    losses = {"base model, base tokenizer": loss_on(trained, stream(base, TEXT))}
    for init in ("subword-mean", "mean", "random"):
        model = copy.deepcopy(trained)
        resize_embeddings(model, new, base, init)
        losses[init] = loss_on(model, new_ids)
    print("\nloss on the text with the extended tokenizer:", {k: round(v, 3) for k, v in losses.items()})
    assert losses["subword-mean"] < losses["mean"]
    assert losses["subword-mean"] < losses["random"]


def test_pad_to_multiple_and_padding_rows(small_tokenizers, trained):
    base, new, _ = small_tokenizers
    model = copy.deepcopy(trained)
    report = resize_embeddings(model, new, base, pad_to_multiple_of=64)
    rows = model.get_input_embeddings().weight.shape[0]
    assert rows % 64 == 0 and rows >= len(new) and report["new_rows"] == rows
    assert report["padding_rows"] == rows - len(new)
    assert model.get_output_embeddings().weight.shape[0] == rows


def test_no_growth_is_a_no_op(small_tokenizers, trained):
    base, _, _ = small_tokenizers
    model = copy.deepcopy(trained)
    report = resize_embeddings(model, base, base)
    assert report["new_rows"] == report["old_rows"] == len(base)


def test_refuses_a_tokenizer_that_is_not_an_extension(small_tokenizers, trained, tiny_tokenizer):
    base, _, _ = small_tokenizers
    model = copy.deepcopy(trained)
    with pytest.raises(ZhllamaError, match="does not extend the base tokenizer"):
        resize_embeddings(model, tiny_tokenizer, base)
    assert model.get_input_embeddings().weight.shape[0] == len(base)  # untouched


def test_refuses_unknown_init(small_tokenizers, trained):
    base, new, _ = small_tokenizers
    with pytest.raises(ZhllamaError, match="unknown embedding init"):
        resize_embeddings(copy.deepcopy(trained), new, base, "zeros")


def test_tied_embeddings_grow_together(small_tokenizers):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    base, new, _ = small_tokenizers
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(base), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                         num_attention_heads=2, tie_word_embeddings=True))
    old = model.get_input_embeddings().weight.detach().clone()
    report = resize_embeddings(model, new, base)
    assert report["initialised_from_subwords"] == len(new) - len(base)
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight
    idx = len(base)
    parts = base_piece_ids(new.convert_ids_to_tokens(idx), new, base)
    torch.testing.assert_close(model.get_input_embeddings().weight[idx], old[parts].mean(0))

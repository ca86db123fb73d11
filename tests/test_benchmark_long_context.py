"""The long-context benchmark's training data: whole passkey documents of exactly the block size.

If a document were a token short or long, `train pt`'s packing would cut keys off from their
questions and the model could not learn retrieval (what the benchmark's first version measured).
"""

import importlib.util
import random
from pathlib import Path

from zhllama.templates import encode_plain_text

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "long_context.py"


def load_benchmark():
    spec = importlib.util.spec_from_file_location("long_context_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def n_tokens(tokenizer, doc: str) -> int:
    return len(encode_plain_text(tokenizer, doc)) + 2  # BOS and EOS, as train pt adds them


def test_every_passkey_document_is_exactly_the_block_and_ends_with_its_key(tiny_tokenizer):
    bench = load_benchmark()
    rng = random.Random(0)
    for filler in (None, "人民日报发表新年献词。今天的天气很好，大家都出门了。" * 10):
        doc = bench.passkey_document(tiny_tokenizer, rng, 64, filler, digits=3)
        assert doc is not None and n_tokens(tiny_tokenizer, doc) == 64
        key = doc.split("密码是")[1][:3]
        assert key.isdigit() and doc.rstrip("。").endswith(bench.QUESTION + key)


def test_a_4l_corpus_packs_into_whole_blocks_of_l_to_4l_documents(tiny_tokenizer, tmp_path):
    bench = load_benchmark()
    path = bench.passkey_corpus(tmp_path / "c.txt", tiny_tokenizer, 256, 8, real_share=0.5, digits=2, seed=0,
                                splits=bench.SPLITS_4L)
    lengths = [n_tokens(tiny_tokenizer, d) for d in path.read_text(encoding="utf-8").splitlines()]
    assert set(lengths) <= {64, 128, 192, 256} and len(set(lengths)) > 1
    running = 0
    for n in lengths:  # documents in a row fill blocks of 256 exactly, never straddling two
        running += n
        assert running <= 256
        running %= 256
    assert running == 0 and sum(lengths) == 8 * 256


def test_plain_text_blocks_fill_whole_blocks_and_hold_no_key(tiny_tokenizer, tmp_path):
    bench = load_benchmark()
    path = bench.passkey_corpus(tmp_path / "c.txt", tiny_tokenizer, 256, 12, real_share=0.0, digits=2, seed=0,
                                splits=bench.SPLITS_4L, text_share=0.5)
    docs = path.read_text(encoding="utf-8").splitlines()
    plain = [d for d in docs if "密码" not in d]
    assert 0 < len(plain) < 12  # some blocks are plain text, the others passkey documents
    assert all(n_tokens(tiny_tokenizer, d) == 256 for d in plain)
    assert sum(n_tokens(tiny_tokenizer, d) for d in docs) == 12 * 256


def test_document_perplexity_scores_bos_started_documents(tiny_model_dir):
    """Perplexity over documents [BOS] + n-1 tokens, every token after BOS scored once; not a sliding window."""
    import math

    import torch
    from transformers import AutoModelForCausalLM

    bench = load_benchmark()
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    ids = list(range(5, 5 + 2 * 7 + 3))  # two documents of 1 + 7 tokens; the last 3 tokens are left out
    nll, count = 0.0, 0
    for doc in ([1] + ids[0:7], [1] + ids[7:14]):
        with torch.inference_mode():
            logp = torch.log_softmax(model(input_ids=torch.tensor([doc])).logits[0, :-1].double(), dim=-1)
        nll -= float(logp.gather(1, torch.tensor(doc[1:]).view(-1, 1)).sum())
        count += len(doc) - 1
    got = bench.document_perplexity(model, 1, ids, 8)
    assert math.isclose(got, math.exp(nll / count), rel_tol=1e-4)
    assert not math.isclose(got, bench.document_perplexity(model, 2, ids, 8), rel_tol=1e-4)  # the BOS matters

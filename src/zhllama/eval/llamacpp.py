"""Running an exported GGUF file with llama.cpp (through llama-cpp-python, an optional dependency).

Used by ``zhllama eval ppl --model FILE.gguf`` so a quantized file is scored with the same
sliding windows and the same tokenization rule as the Hugging Face model it came from: the
perplexity table of Chinese-LLaMA-Alpaca-2 (f16 vs 8-bit vs 4-bit) is measured this way.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ZhllamaError, require_file


def load_llama(path: str | Path, n_ctx: int | None = None, threads: int | None = None):
    """A ``llama_cpp.Llama`` for ``path`` with logits kept for every position."""
    p = require_file(path, "GGUF file")
    try:
        import llama_cpp
    except ImportError:
        raise ZhllamaError(f"{p}: running GGUF files needs llama-cpp-python",
                           "pip install llama-cpp-python (builds llama.cpp from source), or evaluate the "
                           "Hugging Face model folder instead") from None
    try:
        return llama_cpp.Llama(model_path=str(p), n_ctx=n_ctx or 0, n_batch=512, n_threads=threads,
                               logits_all=True, verbose=False)
    except ValueError as e:  # llama-cpp-python reports a file llama.cpp rejects as ValueError
        raise ZhllamaError(f"{p}: llama.cpp cannot load this file ({e})",
                           "re-export it with zhllama export gguf") from None


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    logits = logits.astype(np.float64)
    m = logits.max(-1, keepdims=True)
    return logits - m - np.log(np.exp(logits - m).sum(-1, keepdims=True))


def gguf_text_ids(llm, text: str) -> list[int]:
    """BOS (where the vocabulary adds one: :func:`~zhllama.infer.llamacpp_vocab.added_bos`) + the text's
    ids, as zhllama.eval.ppl.text_ids does for a Hugging Face tokenizer."""
    import llama_cpp

    from ..infer.llamacpp_vocab import added_bos

    bos = added_bos(llama_cpp, llama_cpp.llama_model_get_vocab(llm.model))
    return ([] if bos is None else [bos]) + llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)


def gguf_score_ids(llm, ids: list[int], context: int, stride: int) -> tuple[float, int]:
    """(summed NLL in nats, tokens scored), over the same windows as the Hugging Face scorer."""
    from .ppl import windows

    total, count = 0.0, 0
    for begin, end, first in windows(len(ids), context, stride):
        llm.reset()
        llm.eval(ids[begin:end])
        logits = np.asarray(llm.scores[first - 1 - begin: end - 1 - begin])
        targets = np.asarray(ids[first:end])
        total -= float(_log_softmax(logits)[np.arange(len(targets)), targets].sum())
        count += len(targets)
    return total, count


def gguf_perplexity(path: str | Path, texts: list[str], context: int | None, stride: int | None,
                    threads: int | None = None, progress: bool = True) -> dict:
    """The report of zhllama.eval.ppl.perplexity, computed by llama.cpp on a GGUF file."""
    from tqdm.auto import tqdm

    from .ppl import PplTotals, check_window

    check_window(context, stride)
    llm = load_llama(path, n_ctx=context, threads=threads)
    context = context or llm.n_ctx()
    stride = stride or max(1, context // 2)
    totals = PplTotals()
    for text in tqdm(texts, desc="texts", unit="text", disable=not progress or len(texts) < 2):
        nll, n = gguf_score_ids(llm, gguf_text_ids(llm, text), context, stride)
        totals.add(PplTotals(nll, n, len(text), len(text.encode("utf-8")), 1))
    return {**totals.report(), "context": context, "stride": stride}

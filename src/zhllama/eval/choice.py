"""The one choice scorer: which of a fixed set of answers a model prefers after a prompt.

``eval mc`` (the answer letters A-D) and the pipeline's held-out task accuracy (labels such as
正面/负面) both use it.  A choice's score is the log-probability the model gives its tokens after
the prompt, summed over its tokens; the answer is the best-scoring choice, as the C-Eval/CMMLU
evaluators take the best option letter.  Scoring a fixed label set rather than free generation
gives a number before instruction tuning (when the model does not yet answer in the expected
form) as well as after it.

When every choice is one token, one forward pass per prompt is enough: the next-token
distribution at the prompt's last position (:func:`next_token_scores`, prompts batched and
right-padded).  Longer choices are appended to the prompt (:func:`continuation_scores`).  Both give
the same scores for one-token choices.  Log-probabilities are taken in float64, so ranking them
ranks the logits exactly (the same answers as comparing logits).
"""

from __future__ import annotations

from collections import defaultdict


def choice_scores(model, prompts: list[list[int]], choices: list[list[list[int]]], pad_id: int = 0) -> list[list[float]]:
    """Log-probability of each choice (token ids) after its prompt: ``choices[i]`` go with ``prompts[i]``."""
    if all(len(c) == 1 for options in choices for c in options):
        return next_token_scores(model, prompts, [[c[0] for c in options] for options in choices], pad_id)
    return [continuation_scores(model, p, options, pad_id) for p, options in zip(prompts, choices)]


def best_choice(scores: list[float]) -> int:
    """Index of the best score (the first one on a tie)."""
    return max(range(len(scores)), key=scores.__getitem__)


def next_token_scores(model, prompts: list[list[int]], tokens: list[list[int]], pad_id: int = 0) -> list[list[float]]:
    """Next-token log-probability of each of ``tokens[i]`` after ``prompts[i]``; one right-padded batch."""
    import torch

    logp = torch.log_softmax(next_token_logits(model, prompts, pad_id).double(), dim=-1).cpu()
    return [[float(logp[row, t]) for t in toks] for row, toks in enumerate(tokens)]


def next_token_logits(model, prompts: list[list[int]], pad_id: int = 0):
    """The next-token logits (batch x vocabulary, the model's dtype) after each prompt; one right-padded batch."""
    import torch

    device = next(model.parameters()).device
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    for row, p in enumerate(prompts):
        ids[row, : len(p)] = torch.tensor(p)
    last = torch.tensor([[len(p) - 1] for p in prompts])
    with torch.inference_mode():
        return model(input_ids=ids.to(device), logits_to_keep=last.to(device)).logits[:, 0]


def continuation_scores(model, prompt: list[int], continuations: list[list[int]], pad_id: int = 0) -> list[float]:
    """Summed log-probability of each continuation's tokens following ``prompt`` (one batch)."""
    import torch

    device = next(model.parameters()).device
    seqs = [prompt + c for c in continuations]
    width = max(len(s) for s in seqs)
    ids = torch.tensor([s + [pad_id] * (width - len(s)) for s in seqs])
    mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs])
    with torch.inference_mode():
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
    start = len(prompt) - 1  # the logits at position i predict token i + 1
    out = []
    for row, c in enumerate(continuations):
        logp = torch.log_softmax(logits[row, start: start + len(c)].double(), dim=-1).cpu()
        out.append(float(logp[torch.arange(len(c)), torch.tensor(c)].sum()))
    return out


def task_accuracy(model, tokenizer, template: str, records: list[dict], progress: bool = True) -> dict:
    """``{task: accuracy}`` over held-out Alpaca records with ``task``, ``choices`` and ``output``, plus ``"all"``.

    The prompt is rendered with the chat template, as in training; each choice is scored as the
    assistant's reply.
    """
    from tqdm.auto import tqdm

    from ..templates import alpaca_record_to_messages, encode_messages

    right: dict[str, int] = defaultdict(int)
    total: dict[str, int] = defaultdict(int)
    for r in tqdm(records, desc="task accuracy", unit="q", disable=not progress):
        msgs = alpaca_record_to_messages(r["instruction"], r.get("input", ""))
        prompt, _ = encode_messages(tokenizer, template, msgs, add_generation_prompt=True)
        answers = [encode_messages(tokenizer, template, msgs + [{"role": "assistant", "content": c}])[0][len(prompt):]
                   for c in r["choices"]]
        (scores,) = choice_scores(model, [prompt], [answers])
        right[r["task"]] += r["choices"][best_choice(scores)] == r["output"]
        total[r["task"]] += 1
    out = {t: right[t] / total[t] for t in sorted(total)}
    out["all"] = sum(right.values()) / max(sum(total.values()), 1)
    return out

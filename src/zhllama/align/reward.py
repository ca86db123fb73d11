"""Scoring preference pairs with a reward model: ``zhllama eval reward``.

Each pair is encoded exactly as ``train rm`` saw it (:mod:`zhllama.data.preference`, the
template recorded in the model's ``zhllama.json``); the score of a sequence is the model's output
at its last non-pad token.  Reported: pair accuracy (chosen scored above rejected), the mean and
quartiles of the margin (chosen minus rejected) and the mean scores.
"""

from __future__ import annotations

from ..errors import ZhllamaError


def score_sequences(model, sequences: list[list[int]], pad_id: int, batch_size: int = 16) -> list[float]:
    """One score per token sequence (right-padded batches)."""
    import torch

    device = next(model.parameters()).device
    scores: list[float] = []
    for i in range(0, len(sequences), batch_size):
        chunk = sequences[i:i + batch_size]
        longest = max(len(s) for s in chunk)
        ids = torch.tensor([s + [pad_id] * (longest - len(s)) for s in chunk], device=device)
        mask = torch.tensor([[1] * len(s) + [0] * (longest - len(s)) for s in chunk], device=device)
        with torch.no_grad():
            scores += model(input_ids=ids, attention_mask=mask).logits[:, 0].float().tolist()
    return scores


def reward_template(model_dir: str, template: str | None) -> str:
    from ..meta import read_meta

    template = template or read_meta(model_dir).template
    if template is None:
        raise ZhllamaError(f"{model_dir} records no chat template", "pass --template (the one the reward model was trained with)")
    return template


def evaluate_reward(model_dir: str, files: list[str], template: str | None = None, max_length: int = 1024,
                    batch_size: int = 16, skip_bad: bool = False, device: str = "auto", seed: int | None = None) -> dict:
    """Pair accuracy and margins of the reward model in ``model_dir`` on the preference ``files``.

    ``seed`` matters only for a folder that is not a reward model yet (its score head is drawn at load).
    """
    import statistics

    import torch

    from ..data.preference import encode_pair, load_pairs
    from ..model.load import load_sequence_classifier, resolve_device
    from ..tokenizer.load import load_tokenizer

    template = reward_template(model_dir, template)
    pairs, report = load_pairs(files, skip_bad)  # bad data fails before the model is read
    if seed is not None:
        torch.manual_seed(seed)
    model = load_sequence_classifier(model_dir).to(resolve_device(device)).eval()
    tok = load_tokenizer(model_dir)
    pad = model.config.pad_token_id
    if pad is None:  # not trained by `train rm`: pad as its trainer would (the tokenizer's pad, else EOS)
        pad = model.config.pad_token_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    encoded = [e for e in (encode_pair(tok, template, p, max_length) for p in pairs) if e is not None]
    if not encoded:
        raise ZhllamaError(f"every prompt is longer than max_length {max_length}", "raise --max-length")
    chosen = score_sequences(model, [e["prompt_ids"] + e["chosen_ids"] for e in encoded], pad, batch_size)
    rejected = score_sequences(model, [e["prompt_ids"] + e["rejected_ids"] for e in encoded], pad, batch_size)
    margins = [c - r for c, r in zip(chosen, rejected)]
    quartiles = statistics.quantiles(margins, n=4) if len(margins) > 1 else [margins[0]] * 3
    return {"model": str(model_dir), "template": template, "pairs": len(encoded), "skipped": report["skipped"],
            "dropped_too_long": len(pairs) - len(encoded), "accuracy": sum(m > 0 for m in margins) / len(margins),
            "mean_margin": statistics.fmean(margins), "margin_quartiles": quartiles,
            "mean_chosen_score": statistics.fmean(chosen), "mean_rejected_score": statistics.fmean(rejected)}


def reply_logprob(model, prompt: list[int], reply: list[int]) -> float:
    """Sum of log p(reply token | everything before it) under a causal LM."""
    import torch

    device = next(model.parameters()).device
    ids = torch.tensor([prompt + reply], device=device)
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, len(prompt) - 1:-1].float()
    return logits.log_softmax(-1).gather(1, ids[0, len(prompt):, None]).sum().item()


def logprob_margin(model_dir: str, files: list[str], template: str | None = None, lora: str | None = None,
                   max_length: int = 1024, device: str = "auto") -> dict:
    """Mean over pairs of log p(chosen) - log p(rejected) under a causal LM (the quantity DPO raises).

    DPO's implicit reward margin is ``beta`` times this margin's rise over the reference model, so
    comparing it before and after ``train dpo`` on held-out pairs measures what DPO learned.
    """
    from ..data.preference import load_pairs
    from ..model.load import load_model

    template = reward_template(lora or model_dir, template)
    pairs, _ = load_pairs(files)
    model, tok = load_model(model_dir, lora=lora, device=device)
    return pair_margins(model, tok, template, pairs, max_length)


def pair_margins(model, tok, template: str, pairs: list[dict], max_length: int = 1024) -> dict:
    """:func:`logprob_margin` for a loaded causal LM and loaded pairs."""
    import statistics

    from ..data.preference import encode_pair

    margins = []
    for pair in pairs:
        e = encode_pair(tok, template, pair, max_length)
        if e is not None:
            margins.append(reply_logprob(model, e["prompt_ids"], e["chosen_ids"])
                           - reply_logprob(model, e["prompt_ids"], e["rejected_ids"]))
    if not margins:
        raise ZhllamaError(f"every prompt is longer than max_length {max_length}", "raise max_length")
    return {"pairs": len(margins), "mean_margin": statistics.fmean(margins),
            "accuracy": sum(m > 0 for m in margins) / len(margins)}

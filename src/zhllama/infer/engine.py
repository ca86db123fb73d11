"""The one generation engine: chat, generate, serve, webui and eval all generate through it.

Why a hand-written decode loop rather than ``model.generate``: every request in a batch keeps its
own sampling settings, seed, stop strings and token budget; text is streamed per request as soon
as a character is complete; and a finished request leaves the batch at once (its rows are dropped
from the KV cache), so the rest decode faster.  ``model.generate`` takes one setting per batch and
streams only batch-size 1.  The loop is the same as transformers' greedy/sampling loop: left
padding, position ids from the attention mask, a ``DynamicCache``, and transformers' logits
processors (see ``sampling.py``); greedy output equals ``model.generate``'s (tested).  The batch
itself (``batch.py``) lets requests join between steps too: the server's continuous batching.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

from ..errors import ZhllamaError
from ..rope_scaling import RopeScaling
from ..templates import ChatTemplate, encode_messages, encode_plain_text, get_template, split_turns, stop_token_ids
from .batch import DecodeBatch, _left_pad, _Request, cache_argument
from .logprobs import LogprobRequest, TokenNames
from .sampling import SAMPLING_DEFAULTS, SamplingParams, expand_params, generator_seed
from .speculative import SpeculativeStats
from .stream import TextStream

__all__ = ["Completion", "Engine", "SamplingParams"]


@dataclass
class Completion:
    text: str
    token_ids: list[int]  # generated ids, without the final EOS
    finish_reason: str  # "stop" (EOS or stop string) | "length"
    prompt_tokens: int
    completion_tokens: int  # tokens the model generated (the EOS included when it ended the text)


class Engine:
    """A causal LM + tokenizer + chat template, generating batched, streamed, per-request-sampled text."""

    def __init__(self, model, tokenizer, template: str | ChatTemplate = "none", context_length: int | None = None,
                 draft=None, draft_tokens: int = 4):
        """``draft``: a smaller model with the same tokenizer for speculative sampling (single requests)."""
        if draft_tokens < 1:
            raise ZhllamaError(f"draft_tokens={draft_tokens} must be at least 1", "e.g. --draft-tokens 4")
        self.model = model
        self._cache_arg = cache_argument(model)
        self.draft = draft
        self.draft_tokens = draft_tokens
        self.speculative_stats = SpeculativeStats()
        self.tokenizer = tokenizer
        self.template = get_template(template) if isinstance(template, str) else template
        self.context_length = int(context_length or _model_context(model))
        self.eos_ids = _eos_ids(model, tokenizer) | stop_token_ids(tokenizer, self.template)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(self.eos_ids, default=0)

    @classmethod
    def load(cls, model_path, lora=None, template: str | None = None, device: str = "auto", dtype: str = "auto",
             context_length: int | None = None, rope_scaling: RopeScaling | None = None, draft_model=None,
             draft_tokens: int = 4, quantize: str | None = None, attn: str | None = None) -> "Engine":
        """Load a model folder (+ an unmerged LoRA adapter).

        ``rope_scaling`` e.g. ``RopeScaling.from_text("ntk:2")``; ``draft_model`` a folder for speculative sampling;
        ``quantize`` 8bit/4bit (bitsandbytes) and ``attn`` the attention kernel, for the model and its draft.
        """
        from ..model.families import resolve_template
        from ..model.load import load_model
        from ..model.rope import apply_rope_scaling
        from .speculative import check_draft

        name = resolve_template(model_path, lora, template)
        model, tokenizer = load_model(model_path, lora=lora, dtype=dtype, device=device, quantize=quantize, attn=attn,
                                      template=name)  # the template is checked against the tokenizer before the weights
        if rope_scaling:
            context_length = context_length or apply_rope_scaling(model, rope_scaling)
        draft = None
        if draft_model:
            draft, draft_tokenizer = load_model(draft_model, dtype=dtype, device=device, quantize=quantize, attn=attn)
            check_draft(tokenizer, draft_tokenizer, draft, model)
            if rope_scaling:
                apply_rope_scaling(draft, rope_scaling)
        return cls(model, tokenizer, name, context_length, draft=draft, draft_tokens=draft_tokens)

    @property
    def device(self):
        return next(self.model.parameters()).device

    @property
    def token_names(self) -> TokenNames:
        """Each token id's text and bytes, for the requests that ask for log-probabilities (built on first use)."""
        if getattr(self, "_token_names", None) is None:
            self._token_names = TokenNames(self.tokenizer)
        return self._token_names

    # ----- prompts -----

    def chat_prompt(self, messages: Sequence[dict], max_new_tokens: int = SAMPLING_DEFAULTS.max_new_tokens) -> list[int]:
        """Prompt ids for a conversation, oldest turns dropped (system prompt kept) to leave room for the reply."""
        system, turns = split_turns(messages)
        head = [{"role": "system", "content": system}] if system is not None else []
        rest = list(messages)[len(head):]
        budget = self.context_length - max_new_tokens
        while True:
            ids = self._encode_chat(head + rest)
            if len(ids) <= budget:
                return ids
            if len(rest) <= 1:
                raise ZhllamaError(
                    f"the last message alone is {len(ids)} prompt tokens; with max_new_tokens={max_new_tokens} it does "
                    f"not fit the context of {self.context_length} tokens",
                    "shorten the message or lower max_new_tokens")
            rest = rest[2:]  # the oldest user message and its reply

    def _encode_chat(self, messages: Sequence[dict]) -> list[int]:
        """A conversation's prompt ids, with the generation prompt (the template's segments, tokenized)."""
        return encode_messages(self.tokenizer, self.template, messages, add_generation_prompt=True)[0]

    def negative_chat_prompt(self, messages: Sequence[dict], params: SamplingParams,
                             max_new_tokens: int | None = None) -> list[int] | None:
        """The CFG unconditional prompt of a conversation: the same messages with the negative prompt as the
        system prompt, rendered with the same template (as Chinese-LLaMA-Alpaca-2's inference scripts and
        web demo build it).  None without CFG or without a negative prompt (the engine then uses the
        prompt's last token, as transformers does)."""
        if not params.guided or not params.negative_prompt:
            return None
        system, _ = split_turns(messages)
        rest = list(messages)[1:] if system is not None else list(messages)
        return self.chat_prompt([{"role": "system", "content": params.negative_prompt}] + rest,
                                params.max_new_tokens if max_new_tokens is None else max_new_tokens)

    def text_prompt(self, text: str) -> list[int]:
        """A raw completion prompt: BOS + the text's ids (as the ``none`` template renders it)."""
        ids = encode_plain_text(self.tokenizer, text) if text else []
        bos = self.tokenizer.bos_token_id
        return ([bos] if bos is not None else []) + list(ids)

    # ----- generation -----

    def generate(self, prompts: list[list[int]], params: SamplingParams | list[SamplingParams] | None = None,
                 negatives: list[list[int] | None] | None = None) -> list[Completion]:
        """Complete every prompt (batched); results in the order of ``prompts``.

        ``negatives``: per prompt, the ids of its CFG negative prompt (see :meth:`negative_chat_prompt`),
        or None for the default (the params' ``negative_prompt`` as raw text, else the prompt's last token).
        """
        requests = self._requests(prompts, params, negatives)
        for _ in self._decode(requests):
            pass
        return [_completion(r) for r in requests]

    def stream(self, prompts: list[list[int]], params: SamplingParams | list[SamplingParams] | None = None,
               token_counts: list[int] | None = None, negatives: list[list[int] | None] | None = None,
               logprobs: list[LogprobRequest | None] | None = None) -> Iterator[tuple[int, str, str | None]]:
        """Yield ``(request index, text delta, finish_reason or None)`` as tokens are decoded.

        ``token_counts``, when given a list, is kept filled with each request's generated-token
        count (the EOS included when it ended the text), final once its finish event is yielded:
        deltas are text, so this is how a caller gets exact usage numbers.  ``logprobs``: per
        prompt, a :class:`LogprobRequest` the engine fills as it decodes, or None.
        """
        requests = self._requests(prompts, params, negatives, logprobs)
        if token_counts is not None:
            token_counts[:] = [0] * len(requests)
        for index, delta, finish in self._decode(requests):
            if token_counts is not None:
                token_counts[index] = requests[index].generated
            yield index, delta, finish

    def open_batch(self) -> DecodeBatch:
        """An empty running batch that requests join and leave between steps (the server's continuous batching)."""
        return DecodeBatch(self)

    def _requests(self, prompts, params, negatives=None, logprobs=None) -> list[_Request]:
        if not prompts:
            return []
        params = expand_params(params, len(prompts))
        negatives = list(negatives) if negatives is not None else [None] * len(prompts)
        logprobs = list(logprobs) if logprobs is not None else [None] * len(prompts)
        if len(negatives) != len(prompts) or len(logprobs) != len(prompts):
            raise ZhllamaError(f"{len(negatives)} negative prompts and {len(logprobs)} logprob requests for "
                               f"{len(prompts)} prompts", "give one per prompt")
        return [self.request(prompt, p, neg, i, lp)
                for i, (prompt, p, neg, lp) in enumerate(zip(prompts, params, negatives, logprobs))]

    def request(self, prompt: list[int], params: SamplingParams | None = None, negative: list[int] | None = None,
                index: int = 0, logprobs: LogprobRequest | None = None) -> _Request:
        """One checked request: its prompt fits the context, and so does its CFG negative prompt.

        ``logprobs``: what log-probabilities it wants (filled as it decodes); one with ``generate=False``
        only scores its prompt (a budget of 0 tokens).
        """
        p = (params or SamplingParams()).validate()
        prompt = self._checked_prompt(prompt, f"prompt {index}")
        if p.guided:
            if negative is None:
                negative = self.text_prompt(p.negative_prompt) if p.negative_prompt else prompt[-1:]
            negative = self._checked_prompt(negative, f"the negative prompt of prompt {index}")
        else:
            negative = None  # guidance_scale 1 is plain decoding
        room = self.context_length - max(len(prompt), len(negative or ()))
        stop = tuple(dict.fromkeys(p.stop + self.template.stop_strings))
        budget = min(p.max_new_tokens, room) if logprobs is None or logprobs.generate else 0
        if logprobs is not None:
            logprobs.reset()
        return _Request(prompt, p, budget, TextStream(self.tokenizer, stop), negative, logprobs=logprobs)

    def _checked_prompt(self, prompt, what: str) -> list[int]:
        prompt = [int(t) for t in prompt]
        if not prompt:
            raise ZhllamaError(f"{what} is empty", "give at least one token (text_prompt adds BOS)")
        if self.context_length - len(prompt) < 1:
            raise ZhllamaError(f"{what} is {len(prompt)} tokens; the context is {self.context_length}",
                               "shorten the prompt")
        return prompt

    def _decode(self, requests: list[_Request]) -> Iterator[tuple[int, str, str | None]]:
        """Decode ``requests`` together: all join one batch, each leaves it as it finishes."""
        import torch

        if not requests:
            return
        alone = len(requests) == 1 and requests[0].negative is None and requests[0].logprobs is None
        if self.draft is not None and alone:
            generator = torch.Generator(device=self.device)
            generator.manual_seed(generator_seed(requests[0].params.seed))
            yield from self._decode_speculative(requests[0], generator)
            return
        batch = DecodeBatch(self)
        index = {}
        for i, r in enumerate(requests):
            index[batch.join(r)] = i
        while len(batch):
            for number, delta, finish, _ in batch.step():
                yield index[number], delta, finish

    def _decode_speculative(self, req: _Request, generator) -> Iterator[tuple[int, str, str | None]]:
        import torch

        from .speculative import speculative_tokens

        with torch.inference_mode():
            tokens = speculative_tokens(self.model, self.draft, req.prompt, req.params, generator,
                                        len(self.tokenizer), self.draft_tokens, self.speculative_stats)
            for tok in tokens:
                delta, finish = self._advance(req, tok)
                if delta or finish:
                    yield 0, delta, finish
                if finish:
                    tokens.close()
                    return

    def _forward(self, ids, mask, positions, cache, keep: int = 1):
        """Last-position logits (``keep=0``: every position's) over the tokenizer's ids only: padding rows
        (``pad_vocab_to_multiple_of``) are no token and must never be generated."""
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, **{self._cache_arg: cache},
                         use_cache=True, logits_to_keep=keep)
        if keep == 0:
            return out.logits[:, :, :len(self.tokenizer)]
        return out.logits[:, -1, :len(self.tokenizer)]

    def _advance(self, req: _Request, tok: int) -> tuple[str, str | None]:
        """Record one generated token; return (text to release, finish_reason or None)."""
        req.generated += 1
        if tok in self.eos_ids:
            delta, req.finish_reason = req.stream.finish(), "stop"
        else:
            req.ids.append(tok)
            delta = req.stream.push(tok)
            if req.stream.stopped:
                req.finish_reason = "stop"
            elif len(req.ids) >= req.budget:
                delta, req.finish_reason = delta + req.stream.finish(), "length"
        req.text += delta
        return delta, req.finish_reason

    # ----- embeddings -----

    def embed(self, texts: list[str], batch_size: int = 16) -> list[list[float]]:
        """Mean-pooled last hidden state (after the final norm) of each text, L2-normalised."""
        import torch

        decoder = _decoder(self.model)
        vectors: list[list[float]] = []
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                prompts = [self.text_prompt(t)[: self.context_length] for t in texts[start:start + batch_size]]
                ids, mask, _ = _left_pad(prompts, self.pad_id, self.device)
                positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)
                hidden = decoder(input_ids=ids, attention_mask=mask, position_ids=positions).last_hidden_state.float()
                weights = mask.unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1)
                vectors.extend(torch.nn.functional.normalize(pooled, dim=-1).cpu().tolist())
        return vectors


def _completion(r: _Request) -> Completion:
    return Completion(text=r.text, token_ids=list(r.ids), finish_reason=r.finish_reason or "length",
                      prompt_tokens=len(r.prompt), completion_tokens=r.generated)


def _model_context(model) -> int:
    """max_position_embeddings, times the RoPE factor of a model saved with scaling (trained with --rope-scaling)."""
    from ..model.rope import scaled_context

    n = scaled_context(model.config)
    if not n:
        raise ZhllamaError("the model config has no max_position_embeddings", "pass context_length explicitly")
    return n


def _eos_ids(model, tokenizer) -> set[int]:
    ids = set()
    for src in (getattr(model, "generation_config", None), model.config, tokenizer):
        value = getattr(src, "eos_token_id", None)
        ids.update(v for v in (value if isinstance(value, (list, tuple)) else [value]) if v is not None)
    return ids


def _decoder(model):
    """The transformer body (LoRA layers included) without the LM head."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return base.get_decoder()

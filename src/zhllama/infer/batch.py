"""Continuous batching: a running batch that requests join and leave between decode steps.

A request added with :meth:`DecodeBatch.add` is prefilled at the next :meth:`DecodeBatch.step`
(together with the others added meanwhile) and its rows join the running batch; a request that
finishes, or is :meth:`DecodeBatch.cancel` led, leaves at once: its rows are dropped from the KV
cache, and cache columns that only held padding are cut off, so the cache is never wider than the
longest live request.  A request with classifier-free guidance has a second, unconditional row
(its negative prompt) that decodes the same tokens and leaves with it.

Why not transformers' own continuous batching (``model.init_continuous_batching``,
``generate_batch``, ``ContinuousBatchingManager`` over a paged cache): in transformers 5.24 a
request can set only its temperature, top-k and top-p; the random seed is one for the whole manager,
and there is no per-request repetition penalty, stop string, or CFG, and the paged attention path
is not the one peft's unmerged LoRA layers are tested with.  So the batch is kept here over a
``DynamicCache``: rows are left-padded to a common width, each row has its own position ids and
attention mask, and joining is a concatenation of two caches along the batch (the shorter one padded
on the left with masked columns).  Greedy output is the same as decoding a request alone (tested).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .logprobs import LogprobRequest, entries_for, position_logprobs, prompt_entries
from .sampling import Sampler, SamplingParams, guide
from .stream import TextStream


@dataclass
class _Request:
    prompt: list[int]
    params: SamplingParams
    budget: int  # max new tokens, clamped to the context
    stream: TextStream
    negative: list[int] | None = None  # the unconditional prompt of a CFG request
    ids: list[int] = field(default_factory=list)
    text: str = ""
    generated: int = 0
    finish_reason: str | None = None
    logprobs: LogprobRequest | None = None  # what it asked for and got (None: nothing computed for it)

    @property
    def echoes(self) -> bool:
        """Whether its prompt's log-probabilities are wanted (its prefill keeps every position's logits)."""
        return self.logprobs is not None and self.logprobs.prompt


class DecodeBatch:
    """The rows of the requests being decoded together, their KV cache and their last logits."""

    def __init__(self, engine):
        self.engine = engine
        self.sampler = Sampler([], device=engine.device)
        self.requests: dict[int, _Request] = {}  # live requests by number
        self.waiting: list[int] = []  # added, not prefilled yet
        self.owners: list[int] = []  # per cache row: the request it belongs to
        self.unconditional: list[bool] = []  # per cache row: a CFG negative-prompt row
        self.cache = self.mask = self.history = self.positions = self.logits = None
        self.pending: list[int] | None = None  # per row: the token sampled last, fed at the next step

    def __len__(self) -> int:
        return len(self.requests)

    @property
    def rows(self) -> int:
        """Rows in the KV cache now (a CFG request has two)."""
        return len(self.owners)

    @property
    def width(self) -> int:
        """Columns of the KV cache now (the longest live row, padding included; without the last token)."""
        return 0 if self.mask is None else int(self.mask.shape[1])

    def add(self, prompt: list[int], params: SamplingParams | None = None, negative: list[int] | None = None,
            logprobs: LogprobRequest | None = None) -> int:
        """Queue a request for the next step; return its number.  Bad input raises ZhllamaError here."""
        return self.join(self.engine.request(prompt, params, negative, logprobs=logprobs))

    def join(self, request: _Request) -> int:
        """Queue a request made by ``Engine.request`` (its text and ids collect there); return its number."""
        number = self.sampler.add(request.params)
        self.requests[number] = request
        self.waiting.append(number)
        return number

    def request(self, number: int) -> _Request:
        return self.requests[number]

    def cancel(self, number: int) -> None:
        """Drop a request now (a client that went away): its rows leave the cache before the next step."""
        if self.requests.pop(number, None) is None:
            return
        self.sampler.remove(number)
        if number in self.waiting:
            self.waiting.remove(number)
        else:
            self._keep([i for i, owner in enumerate(self.owners) if owner != number])

    def step(self) -> list[tuple[int, str, str | None, int]]:
        """One decode step; return at once what it adds to each request's text.

        When requests were added since the last step, this step is theirs: they are prefilled and
        get their first token, while the running requests wait one prefill (so a newcomer's first
        token never waits for a forward pass of the whole batch).  Otherwise every live request
        gets its next token: the tokens sampled last are fed to the model first (so a token is
        streamed before the next forward pass, not after it).  Returns ``(request number, text
        delta, finish_reason or None, tokens generated so far)`` for each request whose text grew or
        that finished; a finished request has left the batch.
        """
        import torch

        with torch.inference_mode():
            if self.waiting:
                sampled = set(self.waiting)
                self._admit()
            else:
                sampled = set(self.requests)
                if self.pending is not None:
                    self._forward(self.pending)
                    self.pending = None
            if not self.owners:
                return []
            events = self._finish_unsampled(sampled)
            tokens, logprobs = self._next_tokens(sampled)
            for number, tok in tokens.items():
                req = self.requests[number]
                if number in logprobs:
                    self._record(req, tok, logprobs[number])
                delta, finish = self.engine._advance(req, tok)
                if delta or finish:
                    events.append((number, delta, finish, req.generated))
                if finish:
                    del self.requests[number]
                    self.sampler.remove(number)
            old = self.pending or [None] * len(self.owners)
            self.pending = [tokens.get(owner, tok) for owner, tok in zip(self.owners, old)]
            self._keep([i for i, owner in enumerate(self.owners) if owner in self.requests])
        return events

    # ----- internals -----

    def _finish_unsampled(self, sampled: set[int]) -> list[tuple[int, str, str | None, int]]:
        """End the just-prefilled requests that only score their prompt (budget 0): no token is sampled for them."""
        events = []
        for number in [n for n in sampled if self.requests[n].budget <= 0]:
            self.requests[number].finish_reason = "length"
            events.append((number, "", "length", 0))
            del self.requests[number]
            self.sampler.remove(number)
            sampled.discard(number)
        return events

    def _next_tokens(self, sampled: set[int]) -> tuple[dict[int, int], dict[int, tuple]]:
        """One token per request in ``sampled``: its conditional row's logits, guided by its unconditional row.

        Also the log-probabilities of the requests that asked for them (and of those only), from the
        raw logits: ``{number: (chosen logprob, top ids, top logprobs)}``.
        """
        import torch

        cond = [i for i, (u, n) in enumerate(zip(self.unconditional, self.owners)) if not u and n in sampled]
        if not cond:
            return {}, {}
        numbers = [self.owners[i] for i in cond]
        logits = self.logits[cond].float()
        uncond_row = {self.owners[i]: i for i, u in enumerate(self.unconditional) if u}
        guided = [k for k, n in enumerate(numbers) if n in uncond_row]
        if guided:
            scale = torch.tensor([float(self.requests[numbers[k]].params.guidance_scale) for k in guided],
                                 device=logits.device)
            uncond = self.logits[[uncond_row[numbers[k]] for k in guided]].float()
            logits[guided] = guide(logits[guided], uncond, scale)
        chosen = self.sampler.next_tokens(logits, self.history[cond], numbers)
        return dict(zip(numbers, chosen.tolist())), self._token_logprobs(cond, numbers, chosen)

    def _token_logprobs(self, cond: list[int], numbers: list[int], chosen) -> dict[int, tuple]:
        wanted = [k for k, n in enumerate(numbers) if self.requests[n].logprobs is not None]
        out = {}
        for top in {self.requests[numbers[k]].logprobs.top for k in wanted}:  # one call per top-N asked
            group = [k for k in wanted if self.requests[numbers[k]].logprobs.top == top]
            values, ids, tops = position_logprobs(self.logits[[cond[k] for k in group]], chosen[group], top)
            out.update({numbers[k]: (v, i, t) for k, v, i, t in zip(group, values, ids, tops)})
        return out

    def _record(self, req: _Request, tok: int, logprob: tuple) -> None:
        """Log a generated token before it is streamed (the EOS that ends a text too, as vLLM lists it: a
        client that asks for 1 token and drops the last entry, as lm-evaluation-harness does, counts on it)."""
        value, ids, tops = logprob
        req.logprobs.entries += entries_for(self.engine.token_names, [tok], [value], [ids], [tops],
                                            [len(req.stream.text)])

    def _admit(self) -> None:
        """Prefill the waiting requests and merge them into the running batch.

        Requests that echo their prompt's log-probabilities are prefilled apart, keeping every
        position's logits; the others keep only the last position's, as if nobody echoed.
        """
        waiting, self.waiting = self.waiting, []
        for echo in (False, True):
            group = [n for n in waiting if self.requests[n].echoes == echo]
            if group:
                self._prefill(group, echo)

    def _prefill(self, numbers: list[int], echo: bool) -> None:
        """Prefill ``numbers`` as one small batch and merge it into the running one."""
        from transformers import DynamicCache

        rows, owners, unconditional = [], [], []
        for number in numbers:
            req = self.requests[number]
            rows.append(req.prompt)
            owners.append(number)
            unconditional.append(False)
            if req.negative is not None:
                rows.append(req.negative)
                owners.append(number)
                unconditional.append(True)
        ids, mask, history = _left_pad(rows, self.engine.pad_id, self.engine.device)
        positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)
        cache = DynamicCache(config=self.engine.model.config)
        if echo:
            every = self.engine._forward(ids, mask, positions, cache, keep=0)
            self._log_prompts(rows, owners, unconditional, every)
            logits = every[:, -1, :]
        else:
            logits = self.engine._forward(ids, mask, positions, cache)
        new = (cache, mask, history, positions[:, -1:], logits)
        if not self.owners:
            self.cache, self.mask, self.history, self.positions, self.logits = new
        else:
            self._merge(*new)
        if self.pending is not None:
            self.pending += [None] * len(owners)  # theirs are sampled in this step
        self.owners += owners
        self.unconditional += unconditional

    def _log_prompts(self, rows: list[list[int]], owners: list[int], unconditional: list[bool], logits) -> None:
        """Fill each echoing request's prompt entries from its row of the prefill's logits (padding cut off)."""
        for row, (prompt, number, uncond) in enumerate(zip(rows, owners, unconditional)):
            if uncond:
                continue
            log = self.requests[number].logprobs
            own = logits[row, logits.shape[1] - len(prompt):]
            log.prompt_text, log.prompt_entries = prompt_entries(self.engine.token_names, self.engine.tokenizer,
                                                                 prompt, own[:-1], log.top)

    def _merge(self, cache, mask, history, positions, logits) -> None:
        """Append rows to the batch, left-padding the narrower side (masked columns, zero keys/values)."""
        import torch
        import torch.nn.functional as F

        width = max(self.width, int(mask.shape[1]))

        def widen(t, fill):
            pad = width - t.shape[1]
            if not pad:
                return t
            return torch.cat([fill.expand(t.shape[0], pad) if torch.is_tensor(fill) else
                              torch.full((t.shape[0], pad), fill, dtype=t.dtype, device=t.device), t], dim=1)

        def widen_kv(t):
            return F.pad(t, (0, 0, width - t.shape[2], 0))

        self.mask = torch.cat([widen(self.mask, 0), widen(mask, 0)])
        self.history = torch.cat([widen(self.history, self.history[:, :1]), widen(history, history[:, :1])])
        for old, added in zip(self.cache.layers, cache.layers):
            old.keys = torch.cat([widen_kv(old.keys), widen_kv(added.keys)])
            old.values = torch.cat([widen_kv(old.values), widen_kv(added.values)])
        self.positions = torch.cat([self.positions, positions])
        self.logits = torch.cat([self.logits, logits])

    def _keep(self, rows: list[int]) -> None:
        """Keep only ``rows``; then cut the columns that are padding in every remaining row."""
        import torch

        if len(rows) == len(self.owners):
            return
        self.owners = [self.owners[i] for i in rows]
        self.unconditional = [self.unconditional[i] for i in rows]
        if self.pending is not None:
            self.pending = [self.pending[i] for i in rows]
        if not rows:
            self.cache = self.mask = self.history = self.positions = self.logits = self.pending = None
            return
        index = torch.tensor(rows, device=self.mask.device)
        self.cache.batch_select_indices(index)
        self.mask, self.history, self.positions = self.mask[index], self.history[index], self.positions[index]
        if self.logits is not None:
            self.logits = self.logits[index]
        lead = int((self.mask.sum(0) == 0).int().cumprod(0).sum())
        if lead:
            for layer in self.cache.layers:
                layer.keys, layer.values = layer.keys[:, :, lead:], layer.values[:, :, lead:]
            self.mask, self.history = self.mask[:, lead:], self.history[:, lead:]

    def _forward(self, tokens: list[int]) -> None:
        import torch

        column = torch.tensor(tokens, device=self.mask.device)[:, None]
        self.mask = torch.cat([self.mask, torch.ones_like(column)], dim=1)
        self.history = torch.cat([self.history, column], dim=1)
        self.positions = self.positions + 1
        self.logits = self.engine._forward(column, self.mask, self.positions, self.cache)


def _left_pad(prompts: list[list[int]], pad_id: int, device):
    """Left-padded ids, attention mask, and a history copy whose pads are the row's first id.

    The history feeds the repetition penalty: repeating an id the row already has changes nothing,
    whereas a pad id would be penalised as if the row had generated it.
    """
    import torch

    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    history = torch.empty((len(prompts), width), dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for i, p in enumerate(prompts):
        row = torch.tensor(p, dtype=torch.long)
        ids[i, width - len(p):] = row
        history[i] = p[0]
        history[i, width - len(p):] = row
        mask[i, width - len(p):] = 1
    return ids.to(device), mask.to(device), history.to(device)


def cache_argument(model) -> str:
    """The name under which the model's ``forward`` takes its KV cache.

    transformers renamed ``past_key_values`` to ``cache`` (5.24 has ``cache``; 5.19, the version
    vLLM 0.32 pins, only ``past_key_values``).  An older forward takes ``cache=`` silently into its
    ``**kwargs`` and runs without the cache, so every decode step would see one token alone.
    """
    import inspect

    base = model.get_base_model() if hasattr(model, "get_base_model") else model  # an unmerged peft adapter
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"

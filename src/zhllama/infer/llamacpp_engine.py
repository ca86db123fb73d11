"""``--engine llamacpp``: llama.cpp (through llama-cpp-python's low-level API) behind zhllama's engine.

It runs a GGUF file, or a model folder exported on first use (``--outtype``, cached in the folder:
:func:`zhllama.export.cache.cached_gguf`).  As with ``--engine vllm``, only the token loop changes
hands: prompts are built by zhllama (the GGUF's vocabulary and chat template, see
``llamacpp_vocab.py``; the same oldest-turns-first trimming), and every token llama.cpp samples goes
through the same ``Engine._advance`` (byte-safe streaming, stop strings, finish reasons, token
counts).  So ``zhllama serve --engine llamacpp`` keeps the server's routes, auth, errors and usage
numbers, and its greedy output equals zhllama's own engine on an f32 export (tested).

Why the low-level API rather than ``llama_cpp.Llama``: ``Llama`` decodes one sequence at a time and
offers no way to turn off llama.cpp's extra CPU weight buffers.  Here one llama.cpp context holds
``parallel`` sequences (``n_seq_max``) in one KV cache, and each step is one ``llama_decode`` of a
batch that carries the next token of every running sequence together with the prompts of the ones
that joined (continuous batching, as llama.cpp's own server does).  Each request has its own sampler
chain (repetition penalty over its prompt and reply, temperature, top-k, top-p, then a seeded draw
or argmax: transformers' order), so requests never share sampling state or seeds.
"""

from __future__ import annotations

import ctypes
import itertools
import os
from pathlib import Path

from ..errors import ZhllamaError
from .batch import _Request
from .llamacpp_batch import LlamaCppBatch
from .speculative import SpeculativeStats
from .stepped import SteppedEngine

INSTALL_HINT = ("pip install 'zhllama[llamacpp]' (llama-cpp-python builds llama.cpp from source: about 5 min on "
                "2 cores; see docs/serve.md, 'llama.cpp backend')")
_SEED_SPACE = 0xFFFFFFFF  # llama.cpp's seeds are uint32, and 0xFFFFFFFF (LLAMA_DEFAULT_SEED) means "random"
_MAX_SEQUENCES = 256  # llama.cpp's LLAMA_MAX_SEQ: more parallel requests than this wait for a free sequence
_LOG_ERROR, _LOG_CONT = 4, 5  # GGML_LOG_LEVEL_ERROR; _CONT continues the previous message at its level


def require_llama_cpp():
    try:
        import llama_cpp
    except ImportError as e:
        raise ZhllamaError(f"--engine llamacpp needs llama-cpp-python, which cannot be imported here ({e})",
                           INSTALL_HINT) from None
    return llama_cpp


def check_engine_options(engine, backend) -> None:
    """Refuse what only zhllama's own engine does, before anything is loaded or exported."""
    own = "use zhllama's own engine (leave out --engine llamacpp)"
    unsupported = {"--lora": (engine.lora, "merge the adapter first (zhllama merge), then export or pass the folder"),
                   "--rope-scaling": (engine.rope_scaling, own + "; llama.cpp reads RoPE scaling from the GGUF"),
                   "--draft-model": (engine.draft_model, own + " for speculative sampling with a zhllama draft"),
                   "--quantize": (engine.quantize, "choose the GGUF's weight type with --outtype (q8_0, q4_k_m, ...)"),
                   "--attn": (engine.attn, "leave it out: llama.cpp has its own attention kernels")}
    for flag, (value, hint) in unsupported.items():
        if value:
            raise ZhllamaError(f"{flag} is not available with --engine llamacpp", hint)
    if engine.device not in ("auto", "cpu"):
        raise ZhllamaError(f"--device {engine.device} is not available with --engine llamacpp: it runs on the CPU "
                           "here", "leave --device at auto")
    if engine.dtype != "auto":
        raise ZhllamaError(f"--dtype {engine.dtype} is not available with --engine llamacpp: the GGUF's tensors have "
                           "their own types", "leave --dtype out; choose the weight type with --outtype")
    path = Path(engine.model).expanduser()
    if path.suffix == ".gguf" or path.is_file():
        if backend.outtype:
            raise ZhllamaError(f"--outtype {backend.outtype} is for a model folder; {path} is a GGUF file already",
                               "leave out --outtype, or pass the model folder")
    elif not path.is_dir():
        raise ZhllamaError(f"--engine llamacpp: model not found: {path}",
                           "give a .gguf file or a local model folder (exported on first use, see --outtype)")


def gguf_path(model: str, outtype: str | None) -> Path:
    """The GGUF to run: ``model`` itself, or the cached export of the folder ``model``."""
    from ..export.cache import cached_gguf
    from ..model.load import check_model_dir

    path = Path(model).expanduser()
    if path.is_file() or path.suffix == ".gguf":
        if not path.is_file():
            raise ZhllamaError(f"GGUF file not found: {path}", "check the path")
        return path
    return cached_gguf(check_model_dir(path), outtype or "f16")


def _folder_template(model: str, template: str | None) -> str | None:
    """``--template``, else the template a model folder's zhllama.json records (as zhllama's engine reads
    it); None for a GGUF file, whose own chat template is used then."""
    from ..meta import read_meta

    path = Path(model).expanduser()
    if template or not path.is_dir():
        return template
    return read_meta(path).template or None


_KEEP: list = []  # the log callback: llama.cpp keeps a pointer to it for the life of the process


def _route_logs(llama_cpp) -> None:
    """llama.cpp logs every load to stderr; keep only its errors (a failing load is reported by zhllama)."""
    if _KEEP:
        return

    last = [0]

    def log(level, text, _):
        if level != _LOG_CONT:
            last[0] = level
        if last[0] == _LOG_ERROR and text:
            os.write(2, text if level == _LOG_CONT else b"llama.cpp: " + text)

    _KEEP.append(llama_cpp.llama_log_callback(log))
    llama_cpp.llama_log_set(_KEEP[0], ctypes.c_void_p())


def model_params(llama_cpp, extra_buffers: bool):
    """llama.cpp's model parameters, with its extra CPU weight buffers off unless asked for.

    ``use_extra_bufts`` lets llama.cpp repack q4_0/q8_0 weights into interleaved layouts (and AMX
    tiles) at load.  On the AVX-512 + AMX machine zhllama's GGUF tests were written on,
    llama-cpp-python 0.3.36 built from source crashed with SIGSEGV evaluating quantized files in those
    buffers (files written by llama.cpp's own quantizer included), while plain CPU buffers ran every
    file; ``Llama`` has no argument for it.  So the engine loads into plain buffers by default, and
    ``--extra-buffers`` turns repacking back on where it works (on this machine, without AMX, it
    does: q4_0 decodes ~15% faster with it, q8_0 about the same).
    """
    params = llama_cpp.llama_model_default_params()
    params.use_extra_bufts = bool(extra_buffers)
    return params


class LlamaCppEngine(SteppedEngine):
    """zhllama's engine with llama.cpp doing the forward passes and the sampling."""

    flag = "llamacpp"

    def __init__(self, llama_cpp, model, ctx, tokenizer, template, parallel: int, path: Path):
        """``tokenizer``: a :class:`~zhllama.infer.llamacpp_vocab.GgufTokenizer`; ``model``/``ctx``: llama.cpp's."""
        self.lib, self.llama_model, self.ctx = llama_cpp, model, ctx
        self.path = path
        self.model = self.draft = None
        self.draft_tokens = 1
        self.speculative_stats = SpeculativeStats()  # stays empty: `generate` reports it
        self.tokenizer = tokenizer
        self.template = template
        self.context_length = int(llama_cpp.llama_n_ctx(ctx))
        self.parallel = parallel
        self.n_batch = int(llama_cpp.llama_n_batch(ctx))
        self.eos_ids, unused = self._special_tokens()
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(self.eos_ids, default=0)
        self._bias = self._ban(unused)
        self._batch = llama_cpp.llama_batch_init(self.n_batch, 0, 1)
        self._numbers = itertools.count()
        self._open: LlamaCppBatch | None = None

    @classmethod
    def load(cls, engine, backend, threads: int | None = None, parallel: int = 1) -> "LlamaCppEngine":
        """``engine``: an EngineConfig (model, template, context_length); ``backend``: a BackendConfig.

        ``parallel``: sequences decoded together (the server's --max-batch-size); they share one KV
        cache of ``context_length`` tokens.
        """
        from ..templates import get_template
        from .llamacpp_vocab import GgufTokenizer, gguf_template

        check_engine_options(engine, backend)
        name = _folder_template(engine.model, engine.template)
        if name:
            get_template(name)
        llama_cpp = require_llama_cpp()
        path = gguf_path(engine.model, backend.outtype)
        _route_logs(llama_cpp)
        llama_cpp.llama_backend_init()
        model = llama_cpp.llama_model_load_from_file(str(path).encode(), model_params(llama_cpp, backend.extra_buffers))
        if not model:
            raise ZhllamaError(f"llama.cpp cannot load {path}", "is it a GGUF file of an architecture this "
                               "llama-cpp-python knows? (zhllama export gguf writes LLaMA files)")
        tokenizer = GgufTokenizer(llama_cpp, llama_cpp.llama_model_get_vocab(model))
        source = llama_cpp.llama_model_chat_template(model, None)
        template = gguf_template(source.decode("utf-8") if source else None, tokenizer, name)
        n_ctx = int(engine.context_length or llama_cpp.llama_model_n_ctx_train(model))
        params = llama_cpp.llama_context_default_params()
        params.n_ctx, params.n_seq_max, params.kv_unified = n_ctx, min(parallel, _MAX_SEQUENCES), True
        params.n_batch = params.n_ubatch = min(512, n_ctx)
        params.n_threads = params.n_threads_batch = threads or os.cpu_count() or 1
        params.no_perf = True
        ctx = llama_cpp.llama_init_from_model(model, params)
        if not ctx:
            llama_cpp.llama_model_free(model)
            raise ZhllamaError(f"llama.cpp cannot make a context of {n_ctx} tokens for {path}",
                               "lower --context-length (the KV cache may not fit in memory)")
        return cls(llama_cpp, model, ctx, tokenizer, template, params.n_seq_max, path)

    @property
    def device(self):
        return "llamacpp"

    def _encode_chat(self, messages) -> list[int]:
        """zhllama's templates render segments; a GGUF's own Jinja template renders text whose special
        tokens (``<s>``, ``<|im_start|>``...) are parsed, as llama.cpp's chat code does."""
        from .llamacpp_vocab import JinjaChatTemplate

        if isinstance(self.template, JinjaChatTemplate):
            return self.tokenizer.encode(self.template.render(messages), parse_special=True)
        return super()._encode_chat(messages)

    def _special_tokens(self) -> tuple[set[int], list[int]]:
        """End-of-generation ids (EOS, EOT, ...) and unused ids (vocabulary padding rows: never generated)."""
        lib, vocab = self.lib, self.tokenizer.vocab
        eog, unused = set(), []
        for tok in range(len(self.tokenizer)):
            if lib.llama_vocab_is_eog(vocab, tok):
                eog.add(tok)
            elif lib.llama_vocab_get_attr(vocab, tok) & lib.LLAMA_TOKEN_ATTR_UNUSED:
                unused.append(tok)
        return eog, unused

    def request(self, prompt, params=None, negative=None, index: int = 0, logprobs=None) -> _Request:
        """Engine.request, refusing log-probabilities: llama.cpp keeps only the logits the batch asked for,
        and the engine does not ask for the prompt's (echo) or read them back yet."""
        if logprobs is not None:
            raise ZhllamaError("logprobs and echo are not available with --engine llamacpp",
                               "leave them out, or use zhllama's own engine (leave out --engine llamacpp)")
        return super().request(prompt, params, negative, index)

    def _ban(self, tokens: list[int]):
        if not tokens:
            return None
        bias = (self.lib.llama_logit_bias * len(tokens))()
        for entry, tok in zip(bias, tokens):
            entry.token, entry.bias = tok, float("-inf")
        return bias

    def sampler(self, request: _Request):
        """A request's own sampler chain, in transformers' order (penalty, temperature, top-k, top-p, draw).

        The repetition penalty sees the prompt too (as transformers' does): the prompt's ids are
        accepted into the chain before the first token is drawn.
        """
        lib, p = self.lib, request.params
        chain = lib.llama_sampler_chain_init(lib.llama_sampler_chain_default_params())
        if self._bias is not None:
            lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_logit_bias(len(self.tokenizer), len(self._bias),
                                                                                 self._bias))
        if float(p.repetition_penalty) != 1.0:
            lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_penalties(
                len(self.tokenizer), self.context_length, float(p.repetition_penalty), 0.0, 0.0))
        if p.greedy:
            lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_greedy())
        else:
            lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_temp(float(p.temperature)))
            if p.top_k > 0:
                lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_top_k(int(p.top_k)))
            if p.top_p < 1.0:
                lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_top_p(float(p.top_p), 1))
            seed = lib.LLAMA_DEFAULT_SEED if p.seed is None else int(p.seed) % _SEED_SPACE
            lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_dist(seed))
        if float(p.repetition_penalty) != 1.0:
            for tok in request.prompt:
                lib.llama_sampler_accept(chain, tok)
        return chain

    def decode_batch(self, entries: list[tuple[int, int, int, bool]]) -> None:
        """One ``llama_decode`` of ``(token, position, sequence, wants logits)`` entries."""
        batch = self._batch
        batch.n_tokens = len(entries)
        for i, (tok, pos, seq, logits) in enumerate(entries):
            batch.token[i], batch.pos[i], batch.n_seq_id[i], batch.logits[i] = tok, pos, 1, logits
            batch.seq_id[i][0] = seq
        code = self.lib.llama_decode(self.ctx, batch)
        if code != 0:
            raise RuntimeError(f"llama.cpp's llama_decode failed with code {code} ({len(entries)} tokens)")

    def forget(self, seq: int | None = None) -> None:
        """Drop a sequence's KV cells (all of them when ``seq`` is None)."""
        memory = self.lib.llama_get_memory(self.ctx)
        if seq is None:
            self.lib.llama_memory_clear(memory, True)
        else:
            self.lib.llama_memory_seq_rm(memory, seq, -1, -1)

    def open_batch(self) -> "LlamaCppBatch":
        """A new running batch.  The engine has one KV cache and runs one batch at a time (the server's one
        scheduler owns it), so the previous batch is closed first and its cells are freed."""
        if self._open is not None:
            self._open.close()
        self.forget()
        self._open = LlamaCppBatch(self)
        return self._open

    def close(self) -> None:
        """Free llama.cpp's context and model (the engine is unusable afterwards)."""
        if self._open is not None:
            self._open.close()
        if self.ctx:
            self.lib.llama_batch_free(self._batch)
            self.lib.llama_free(self.ctx)
            self.lib.llama_model_free(self.llama_model)
            self.ctx = self.llama_model = None

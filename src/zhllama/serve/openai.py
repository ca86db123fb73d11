"""The OpenAI-compatible server: a FastAPI app over one :class:`Engine` and a :class:`BatchScheduler`.

Routes: ``GET /v1/models``, ``POST /v1/chat/completions``, ``POST /v1/completions`` (both with SSE
streaming ending ``data: [DONE]``), ``POST /v1/embeddings``, ChatLLaMA's ``POST /chat``,
``GET /health``; the OpenAPI schema is at ``/openapi.json`` (browsable at ``/docs``).
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sse_starlette.sse import EventSourceResponse

from .. import __version__
from ..errors import ZhllamaError
from ..infer.logprobs import LogprobRequest
from ..templates import split_turns
from . import schemas as S
from .batching import BatchScheduler, CallJob, Channel, GenJob
from .chunks import ChatChunker, TextChunker, chat_logprobs, completion_choice_logprobs, new_id
from .config import ApiSettings
from .continuous import SCHEDULERS
from .http import APIError, BearerAuth, BodySizeLimit, as_api_error, install_error_handlers
from .results import collect, stream_events, wait_started


class Service:
    """What the routes do, kept apart from FastAPI's wiring."""

    def __init__(self, engine, settings: ApiSettings, scheduler: BatchScheduler):
        self.engine, self.settings, self.scheduler = engine, settings, scheduler
        self.context = int(engine.context_length)
        self.max_prompt = min(settings.max_prompt_tokens or self.context - 1, self.context - 1)
        self.created = int(time.time())

    # ---- checks ----
    def check_model(self, name: str) -> None:
        if name != self.settings.model_name:
            raise APIError(404, f"The model '{name}' does not exist; this server serves '{self.settings.model_name}'",
                           param="model", code="model_not_found")

    def max_new_tokens(self, requested: int | None) -> int:
        if requested is None:
            return min(self.settings.max_tokens, self.context - 1)
        if requested >= self.context:
            raise APIError(400, f"max_tokens is too large: {requested}. This model's maximum context length is "
                                f"{self.context} tokens", param="max_tokens", code="context_length_exceeded")
        return requested

    def check_prompt_length(self, n_tokens: int, max_new: int, explicit: bool, param: str) -> None:
        if n_tokens > self.max_prompt:
            raise APIError(400, f"the prompt is {n_tokens} tokens; this server accepts at most {self.max_prompt}",
                           param=param, code="context_length_exceeded")
        if explicit and n_tokens + max_new > self.context:
            raise APIError(400, f"This model's maximum context length is {self.context} tokens, however you requested "
                                f"{n_tokens + max_new} tokens ({n_tokens} in the prompt; {max_new} for the completion)",
                           param=param, code="context_length_exceeded")

    def check_fits_queue(self, prompts: int, n: int) -> None:
        """A request larger than the whole queue can never run: a 400 saying so, not a 503 'retry later'."""
        limit = self.scheduler.max_queue
        if prompts * n > limit:
            param = "n" if n > 1 else "prompt"
            raise APIError(400, f"this request asks for {prompts * n} generations ({prompts} prompt(s) x n={n}); "
                                f"this server queues at most {limit} (zhllama serve --max-queue): send fewer "
                                "prompts or a smaller n per request", param=param, code="request_too_large")

    def sampling(self, req: S.SamplingFields, max_new: int, choice: int):
        from ..infer.engine import SamplingParams

        # n choices with one seed must still differ; the sum may leave the 64-bit range, the sampler reduces it
        seed = None if req.seed is None else req.seed + choice
        return SamplingParams(max_new_tokens=max_new, temperature=req.temperature, top_p=req.top_p,
                              top_k=req.top_k, repetition_penalty=req.repetition_penalty,
                              stop=req.stop_list(), seed=seed, guidance_scale=req.guidance_scale,
                              negative_prompt=req.negative_prompt)

    # ---- prompt builders (run on the model thread) ----
    def chat_preparer(self, messages: list[dict], max_new: int, explicit: bool):
        # The engine drops the oldest turns until prompt + this many tokens fit the context, so asking it
        # to leave (context - max_prompt) tokens free also enforces --max-prompt-tokens.
        room = max(max_new, self.context - self.max_prompt)

        def prepare() -> list[int]:
            try:
                ids = self.engine.chat_prompt(messages, room)
            except ZhllamaError as e:
                raise APIError(400, str(e), param="messages", code="context_length_exceeded") from None
            self.check_prompt_length(len(ids), max_new, explicit, "messages")
            return ids
        return prepare

    def chat_negative(self, messages: list[dict], req: S.SamplingFields, max_new: int, explicit: bool):
        """The CFG negative prompt's builder: the messages with ``negative_prompt`` as their system prompt."""
        if req.guidance_scale == 1 or not req.negative_prompt:
            return None  # no CFG, or the engine's default (the prompt's last token)
        params = self.sampling(req, max_new, 0)
        room = max(max_new, self.context - self.max_prompt)

        def prepare() -> list[int]:
            try:
                ids = self.engine.negative_chat_prompt(messages, params, room)
            except ZhllamaError as e:
                raise APIError(400, str(e), param="negative_prompt", code="context_length_exceeded") from None
            self.check_prompt_length(len(ids), max_new, explicit, "negative_prompt")
            return ids
        return prepare

    def text_negative(self, req: S.SamplingFields, max_new: int, explicit: bool):
        """For completions the negative prompt is raw text, as the prompt is."""
        if req.guidance_scale == 1 or not req.negative_prompt:
            return None
        return self.text_preparer(req.negative_prompt, max_new, explicit, param="negative_prompt")

    def text_preparer(self, text: str | list[int], max_new: int, explicit: bool, param: str = "prompt"):
        return _Prompt(self, text, max_new, explicit, param)

    def check_token_ids(self, ids: list[int], param: str) -> list[int]:
        vocab = len(self.engine.tokenizer)
        bad = next((i for i in ids if not 0 <= i < vocab), None)
        if bad is not None:
            raise APIError(400, f"{param}: token id {bad} is not in the vocabulary (0 to {vocab - 1})", param=param)
        return list(ids)

    # ---- running jobs ----
    def submit(self, preparers: list, req: S.SamplingFields, max_new: int, negative=None,
               logprobs=None) -> tuple[Channel, list[GenJob]]:
        """One job per (prompt, choice); choice index = prompt index * n + choice, as OpenAI numbers them.

        ``negative``: the builder of the CFG negative prompt's ids (one for every prompt), or None.
        ``logprobs``: what each job asks for (a LogprobRequest, one per job, filled by the engine), or None.
        """
        self.check_fits_queue(len(preparers), req.n)
        channel = Channel()
        jobs = [GenJob(prep, self.sampling(req, max_new, c), channel, index=p * req.n + c, negative=negative,
                       logprobs=logprobs.fresh() if logprobs else None)
                for p, prep in enumerate(preparers) for c in range(req.n)]
        try:
            self.scheduler.submit(jobs)
        except Exception as e:
            raise as_api_error(e) from None
        return channel, jobs

    async def run_call(self, fn):
        channel = Channel()
        job = CallJob(fn, channel)
        try:
            self.scheduler.submit([job])
        except Exception as e:
            raise as_api_error(e) from None
        try:
            _, result = await channel.get()
        finally:
            job.cancelled = True
        if isinstance(result, BaseException):
            raise as_api_error(result)
        return result


def _usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


class _Prompt:
    """A completion prompt (a text, or token ids used as given) and, once prepared, the text it echoes."""

    def __init__(self, svc: Service, prompt: str | list[int], max_new: int, explicit: bool, param: str):
        self.svc, self.prompt, self.max_new, self.explicit, self.param = svc, prompt, max_new, explicit, param
        self.text = prompt if isinstance(prompt, str) else ""

    def __call__(self) -> list[int]:  # runs on the model thread
        engine = self.svc.engine
        if isinstance(self.prompt, str):
            ids = engine.text_prompt(self.prompt)
        else:
            ids = self.svc.check_token_ids(self.prompt, self.param)
            self.text = engine.tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)
        self.svc.check_prompt_length(len(ids), self.max_new, self.explicit, self.param)
        return ids


def _completion_logprobs(req: S.CompletionRequest) -> LogprobRequest | None:
    """What each choice of a completion asks the engine for: None unless it wants logprobs or scores only."""
    if req.max_tokens == 0 and not req.echo:
        raise APIError(400, "max_tokens: 0 generates nothing; it is only valid with echo (to score the prompt)",
                       param="max_tokens")
    if req.logprobs is None and req.max_tokens != 0:
        return None
    return LogprobRequest(top=req.logprobs or 0, prompt=req.echo and req.logprobs is not None,
                          generate=req.max_tokens != 0)


def _chat_logprobs(req: S.ChatCompletionRequest) -> LogprobRequest | None:
    if req.top_logprobs is not None and not req.logprobs:
        raise APIError(400, "top_logprobs: set logprobs to true to use top_logprobs", param="top_logprobs")
    return LogprobRequest(top=req.top_logprobs or 0) if req.logprobs else None


def _chat_messages(req: S.ChatCompletionRequest) -> list[dict]:
    messages = [{"role": m.role, "content": m.text()} for m in req.messages]
    try:
        split_turns(messages, "messages")
    except ZhllamaError as e:
        raise APIError(400, str(e), param="messages") from None
    if messages[-1]["role"] != "user":
        raise APIError(400, "messages: the last message must be from the user", param="messages")
    return messages


def create_app(engine, settings: ApiSettings) -> FastAPI:
    if not settings.model_name:
        raise ZhllamaError("the server needs a model id", "set ApiSettings.model_name (zhllama serve uses the folder's name)")
    if settings.scheduler not in SCHEDULERS:
        raise ZhllamaError(f"unknown scheduler '{settings.scheduler}'", f"one of {', '.join(SCHEDULERS)}")
    scheduler = SCHEDULERS[settings.scheduler](engine, settings.max_batch_size, settings.max_queue,
                                               settings.batch_wait_s)
    svc = Service(engine, settings, scheduler)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        scheduler.start()
        yield
        scheduler.close()

    app = FastAPI(title="zhllama OpenAI-compatible API", version=__version__, lifespan=lifespan,
                  description=f"Serving `{settings.model_name}` with {scheduler.kind} batching.")
    app.state.service = svc
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_bytes)
    app.add_middleware(BearerAuth, api_key=settings.api_key)  # added last = runs first: 401 before the body is read

    @app.get("/health", tags=["server"])
    async def health():
        s = scheduler.stats
        return {"status": "ok", "model": settings.model_name, "queued": scheduler.queued,
                "scheduler": scheduler.kind, "batches": s.batches, "jobs": s.jobs, "largest_batch": s.largest_batch,
                "batch_sizes": {str(k): v for k, v in sorted(s.batch_sizes.items())},
                "steps": s.steps, "step_jobs": s.step_jobs}

    @app.get("/v1/models", response_model=S.ModelList, tags=["openai"])
    async def list_models():
        return {"object": "list", "data": [_card(svc)]}

    @app.get("/v1/models/{model}", response_model=S.ModelCard, tags=["openai"])
    async def get_model(model: str):
        svc.check_model(model)
        return _card(svc)

    @app.post("/v1/chat/completions", response_model=S.ChatCompletion, tags=["openai"],
              responses={400: {"model": S.ErrorResponse}, 401: {"model": S.ErrorResponse},
                         404: {"model": S.ErrorResponse}, 503: {"model": S.ErrorResponse}})
    async def chat_completions(req: S.ChatCompletionRequest):
        svc.check_model(req.model)
        messages = _chat_messages(req)
        logprobs = _chat_logprobs(req)
        requested = req.max_completion_tokens or req.max_tokens
        max_new = svc.max_new_tokens(requested)
        explicit = requested is not None
        channel, jobs = svc.submit([svc.chat_preparer(messages, max_new, explicit)], req, max_new,
                                   svc.chat_negative(messages, req, max_new, explicit), logprobs)
        if req.stream:
            return await _stream_response(channel, jobs, ChatChunker(req, settings.model_name))
        results = await collect(channel, jobs)
        return {"id": new_id("chatcmpl"), "object": "chat.completion", "created": int(time.time()),
                "model": settings.model_name,
                "choices": [{"index": i, "message": {"role": "assistant", "content": r.text},
                             "finish_reason": r.finish_reason,
                             "logprobs": chat_logprobs(r.logprobs) if logprobs else None}
                            for i, r in enumerate(results)],
                "usage": _usage(results[0].prompt_tokens, sum(r.completion_tokens for r in results))}

    @app.post("/v1/completions", response_model=S.TextCompletion, tags=["openai"],
              responses={400: {"model": S.ErrorResponse}, 401: {"model": S.ErrorResponse},
                         404: {"model": S.ErrorResponse}, 503: {"model": S.ErrorResponse}})
    async def completions(req: S.CompletionRequest):
        svc.check_model(req.model)
        logprobs = _completion_logprobs(req)
        max_new = svc.max_new_tokens(req.max_tokens or None)  # 0 (score the prompt): nothing is generated
        explicit = bool(req.max_tokens)
        preparers = [svc.text_preparer(p, max_new, explicit) for p in req.prompts()]
        channel, jobs = svc.submit(preparers, req, max_new, svc.text_negative(req, max_new, explicit), logprobs)
        echo = (lambda p: preparers[p].text) if req.echo else None
        if req.stream:
            return await _stream_response(channel, jobs, TextChunker(req, settings.model_name, echo))
        results = await collect(channel, jobs)
        echoes = [echo(i // req.n) if echo else None for i in range(len(results))]
        return {"id": new_id("cmpl"), "object": "text_completion", "created": int(time.time()),
                "model": settings.model_name,
                "choices": [{"index": i, "text": (echoes[i] or "") + r.text, "finish_reason": r.finish_reason,
                             "logprobs": completion_choice_logprobs(r, echoes[i]) if req.logprobs is not None
                             else None} for i, r in enumerate(results)],
                "usage": _usage(sum(r.prompt_tokens for r in results[::req.n]),
                                sum(r.completion_tokens for r in results))}

    @app.post("/v1/embeddings", response_model=S.EmbeddingList, tags=["openai"],
              responses={400: {"model": S.ErrorResponse}, 401: {"model": S.ErrorResponse}})
    async def embeddings(req: S.EmbeddingRequest):
        svc.check_model(req.model)
        texts = req.texts()

        def embed():
            counts = [len(engine.text_prompt(t)) for t in texts]
            for i, n in enumerate(counts):
                if n > svc.max_prompt:
                    raise APIError(400, f"input[{i}] is {n} tokens; this server accepts at most {svc.max_prompt}",
                                   param="input", code="context_length_exceeded")
            return engine.embed(texts), sum(counts)

        vectors, n_tokens = await svc.run_call(embed)
        data = [{"object": "embedding", "index": i, "embedding": _encode_vector(v, req.encoding_format)}
                for i, v in enumerate(vectors)]
        return {"object": "list", "data": data, "model": settings.model_name, "usage": _usage(n_tokens, 0)}

    @app.post("/chat", response_model=S.ChatLlamaAnswer, tags=["chatllama"])
    async def chatllama(req: S.ChatLlamaRequest):
        """Chinese-ChatLLaMA's ``llama_server.py`` route: ``{"question": ...}`` -> ``{"answer": [...], "status"}``."""
        questions = [req.question] if isinstance(req.question, str) else req.question
        if not questions:
            raise APIError(400, "question: give a question or a list of questions", param="question")
        defaults = S.SamplingFields(model=settings.model_name)  # this route takes no sampling fields
        max_new = svc.max_new_tokens(None)
        preparers = [svc.chat_preparer([{"role": "user", "content": q}], max_new, False) for q in questions]
        channel, jobs = svc.submit(preparers, defaults, max_new)
        results = await collect(channel, jobs)
        return {"answer": [r.text for r in results], "status": "success"}

    return app


def _card(svc: Service) -> dict:
    return {"id": svc.settings.model_name, "object": "model", "created": svc.created, "owned_by": "zhllama"}


def _encode_vector(vector: list[float], fmt: str):
    if fmt == "float":
        return vector
    import numpy as np  # OpenAI's base64 format: little-endian float32 bytes

    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")


async def _stream_response(channel: Channel, jobs: list[GenJob], chunker) -> EventSourceResponse:
    """Wait until every choice is in a batch (so a bad prompt is still a plain 4xx), then stream SSE."""
    try:
        early, started = await wait_started(channel, jobs)
    except BaseException:
        for job in jobs:
            job.cancelled = True
        raise
    prompt_tokens = sum(n for index, n in started.items() if index % chunker.n == 0)

    async def body():
        completion_tokens = 0
        try:
            for chunk in chunker.opening():
                yield json.dumps(chunk, ensure_ascii=False)
            async for index, delta in stream_events(channel, jobs, early):
                completion_tokens += delta.completion_tokens
                for chunk in chunker.delta(index, delta):
                    yield json.dumps(chunk, ensure_ascii=False)
            if chunker.include_usage:
                yield json.dumps(chunker.usage(_usage(prompt_tokens, completion_tokens)))
        except APIError as e:
            yield json.dumps(e.body())
        except asyncio.CancelledError:
            raise
        except Exception as e:  # the headers are gone: report in the stream, as OpenAI does
            yield json.dumps(as_api_error(e).body())
        finally:
            for job in jobs:
                job.cancelled = True
        yield "[DONE]"

    return EventSourceResponse(body(), sep="\n", ping=15)

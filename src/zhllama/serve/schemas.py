"""Request and response bodies of the OpenAI-compatible API (pydantic; they also make the OpenAPI schema).

Only what zhllama can honour is declared.  Parameters OpenAI clients routinely send at their
neutral value (``presence_penalty=0``, ``user``, ``logit_bias={}``...) are accepted and ignored,
as OpenAI-compatible servers do, so LangChain and friends work unchanged; unknown fields are
ignored too.  Out-of-range values are refused (pydantic -> 400 in OpenAI's error shape).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..infer.sampling import SAMPLING_DEFAULTS as D

MAX_N = 8
MAX_STOP = 4
MAX_LOGPROBS = 20  # alternatives per token: vLLM's default max_logprobs (OpenAI allows 5 in completions, 20 in chat)
SEED_MIN, SEED_MAX = -(2**63), 2**64 - 1  # what torch.Generator.manual_seed accepts


def _lone_surrogate(value, where: str = "") -> str | None:
    """Describe the first lone surrogate in ``value`` (text or a list of texts), or None.

    JSON's ``"\\ud800"`` escapes decode to such code points; they are not Unicode text, and the tokenizer
    would fail on them deep inside the batch.
    """
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as e:
            return f"{where}contains a lone surrogate ({value[e.start]!a}) at character {e.start}"
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            found = _lone_surrogate(item, f"item {i} ")
            if found:
                return found
    return None


class _Request(BaseModel):
    # NaN/Infinity (which Python's JSON parser accepts) are refused for every number
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)

    @field_validator("*", mode="after")
    @classmethod
    def _valid_unicode(cls, value):
        found = _lone_surrogate(value)
        if found:
            raise ValueError(f"{found}; send valid UTF-8 text (a \\ud800-\\udbff escape must be followed by a "
                             "\\udc00-\\udfff one)")
        return value


class TextPart(_Request):
    type: Literal["text"]
    text: str


class ChatMessage(_Request):
    role: Literal["system", "user", "assistant"]
    content: str | list[TextPart]

    def text(self) -> str:
        """The message's text (OpenAI also allows a list of ``{"type": "text"}`` parts)."""
        if isinstance(self.content, str):
            return self.content
        return "".join(p.text for p in self.content)


class SamplingFields(_Request):
    """Fields shared by chat and text completions."""

    model: str
    max_tokens: int | None = Field(None, ge=1, description="tokens to generate at most (default: server's --max-tokens)")
    temperature: float = Field(D.temperature, ge=0.0, le=2.0, description="0 = greedy")
    top_p: float = Field(D.top_p, gt=0.0, le=1.0)
    n: int = Field(1, ge=1, le=MAX_N, description="number of choices per prompt")
    stop: str | list[str] | None = Field(None, description=f"up to {MAX_STOP} stop strings")
    seed: int | None = Field(None, ge=SEED_MIN, le=SEED_MAX, description="64-bit seed for reproducible sampling")
    stream: bool = False
    stream_options: dict | None = Field(None, description='{"include_usage": true} adds a final usage chunk')
    # zhllama extensions (not in OpenAI's API)
    top_k: int = Field(D.top_k, ge=0, description="zhllama extension: 0 turns top-k off")
    repetition_penalty: float = Field(D.repetition_penalty, gt=0.0, le=10.0, description="zhllama extension: 1.0 turns it off")
    guidance_scale: float = Field(D.guidance_scale, gt=0.0, description="zhllama extension: classifier-free guidance "
                                  "(CFG) against negative_prompt; 1.0 turns it off")
    negative_prompt: str | None = Field(None, description="zhllama extension: the CFG negative prompt (chat: it takes "
                                        "the system prompt's place; completions: raw text); default: the prompt's "
                                        "last token")
    # accepted for compatibility, neutral values only
    presence_penalty: float = Field(0.0, ge=-2.0, le=2.0)
    frequency_penalty: float = Field(0.0, ge=-2.0, le=2.0)
    user: str | None = None

    @field_validator("stop")
    @classmethod
    def _check_stop(cls, v):
        stops = [v] if isinstance(v, str) else list(v or [])
        if len(stops) > MAX_STOP:
            raise ValueError(f"at most {MAX_STOP} stop sequences are allowed")
        if any(not s for s in stops):
            raise ValueError("stop sequences must not be empty")
        return stops

    def stop_list(self) -> tuple[str, ...]:
        return tuple(self.stop or ())

    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.get("include_usage"))


class ChatCompletionRequest(SamplingFields):
    messages: list[ChatMessage] = Field(..., min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1, description="newer name of max_tokens")
    logprobs: bool = Field(False, description="return each generated token's log-probability")
    top_logprobs: int | None = Field(None, ge=0, le=MAX_LOGPROBS, description="with logprobs: this many most "
                                     "likely tokens at each position")


class CompletionRequest(SamplingFields):
    prompt: str | list[str] | list[int] | list[list[int]] = Field(
        ..., description="a prompt or a list of prompts; each a text or a list of token ids (used as given: no BOS "
                         "is added)")
    max_tokens: int | None = Field(None, ge=0, description="tokens to generate at most (default: server's "
                                   "--max-tokens); 0 with echo scores the prompt only")
    echo: bool = Field(False, description="put the prompt before the completion (and its tokens before the "
                                          "completion's in logprobs)")
    logprobs: int | None = Field(None, ge=0, le=MAX_LOGPROBS, description="return each token's log-probability and "
                                 "this many most likely tokens at each position")

    @field_validator("prompt")
    @classmethod
    def _check_prompt(cls, v):
        if isinstance(v, list) and not v:
            raise ValueError("prompt list must not be empty")
        if isinstance(v, list) and any(isinstance(p, list) and not p for p in v):
            raise ValueError("a prompt of token ids must not be empty")
        return v

    def prompts(self) -> list[str | list[int]]:
        """Each prompt: a text or a list of token ids."""
        if isinstance(self.prompt, str) or (self.prompt and isinstance(self.prompt[0], int)):
            return [self.prompt]
        return list(self.prompt)


class EmbeddingRequest(_Request):
    model: str
    input: str | list[str] = Field(..., description="a text or a list of texts")
    encoding_format: Literal["float", "base64"] = "float"
    user: str | None = None

    @field_validator("input")
    @classmethod
    def _check_input(cls, v):
        if isinstance(v, list) and not v:
            raise ValueError("input list must not be empty")
        return v

    def texts(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)


class ChatLlamaRequest(_Request):
    """Chinese-ChatLLaMA's ``llama_server.py`` body: ``{"question": "..."}`` (or a list of questions)."""

    question: str | list[str]


# ---- responses (for the OpenAPI schema; handlers build the same shapes) ----

class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int = 0
    total_tokens: int


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "zhllama"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class TopLogprob(BaseModel):
    token: str
    logprob: float
    bytes: list[int] | None


class TokenLogprob(TopLogprob):
    top_logprobs: list[TopLogprob]


class ChatLogprobs(BaseModel):
    content: list[TokenLogprob] | None
    refusal: list[TokenLogprob] | None = None


class ChatChoice(BaseModel):
    index: int
    message: AssistantMessage
    finish_reason: str | None
    logprobs: ChatLogprobs | None = None


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage


class CompletionLogprobs(BaseModel):
    """OpenAI's legacy shape: parallel lists; a prompt's first token has no logprob (null), as in vLLM."""

    tokens: list[str]
    token_logprobs: list[float | None]
    top_logprobs: list[dict[str, float] | None]
    text_offset: list[int]


class TextChoice(BaseModel):
    index: int
    text: str
    finish_reason: str | None
    logprobs: CompletionLogprobs | None = None


class TextCompletion(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[TextChoice]
    usage: Usage


class EmbeddingItem(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class EmbeddingList(BaseModel):
    object: Literal["list"] = "list"
    data: list[EmbeddingItem]
    model: str
    usage: Usage


class ChatLlamaAnswer(BaseModel):
    answer: list[str]
    status: Literal["success", "error"]


class ErrorBody(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody

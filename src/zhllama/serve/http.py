"""HTTP plumbing of the server: OpenAI's error shape, Bearer auth and the request-size limit."""

from __future__ import annotations

import json
import secrets

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import ZhllamaError
from .batching import QueueFull


class APIError(Exception):
    """An error answered as ``{"error": {"message", "type", "param", "code"}}`` (OpenAI's shape)."""

    def __init__(self, status: int, message: str, type: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": "Bearer"} if self.status == 401 else {}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers() or None)


def as_api_error(exc: BaseException, param: str | None = None) -> APIError:
    """Map anything a request can fail with to the error it is answered with."""
    if isinstance(exc, APIError):
        return exc
    if isinstance(exc, ZhllamaError):
        return APIError(400, str(exc), param=param)
    if isinstance(exc, QueueFull):
        return APIError(503, f"the server is busy ({exc}); retry later", type="server_error", code="queue_full")
    return APIError(500, f"internal error: {type(exc).__name__}: {exc}", type="server_error")


def _validation_message(err: dict) -> tuple[str, str | None]:
    loc = [str(x) for x in err.get("loc", ()) if x != "body"]
    if err.get("type") == "json_invalid":
        return ("We could not parse the JSON body of your request: send valid JSON with "
                "Content-Type: application/json"), None
    param = ".".join(loc) or None
    msg = err.get("msg", "invalid value").removeprefix("Value error, ")
    return (f"{param}: {msg}" if param else msg), param


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError):
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        # FastAPI answers 422; OpenAI answers a malformed body with 400 invalid_request_error.
        errors = exc.errors()
        message, param = _validation_message(errors[0]) if errors else ("invalid request", None)
        if len(errors) > 1:
            message += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
        return APIError(400, message, param=param).response()

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        if exc.status_code == 404:
            message = f"Invalid URL ({request.method} {request.url.path})"
        else:
            message = str(exc.detail)
        return APIError(exc.status_code, message).response()

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        return as_api_error(exc).response()


PUBLIC_PATHS = frozenset({"/health", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})


def bearer_ok(header: str, api_key: str | None) -> bool:
    if not api_key:
        return True
    scheme, _, token = header.partition(" ")
    return scheme.lower() == "bearer" and secrets.compare_digest(token.strip().encode(), api_key.encode())


class BearerAuth:
    """ASGI middleware: answer 401 before anything of the body is read or parsed.

    FastAPI parses a JSON body before it runs a route's dependencies, so a malformed body from a
    client without the key would get a 400 that tells it about the API; this layer runs first.
    """

    def __init__(self, app, api_key: str | None):
        self.app = app
        self.api_key = api_key

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not self.api_key or scope.get("path") in PUBLIC_PATHS:
            return await self.app(scope, receive, send)
        header = dict(scope.get("headers") or ()).get(b"authorization", b"").decode("latin-1")
        if bearer_ok(header, self.api_key):
            return await self.app(scope, receive, send)
        err = APIError(401, "Incorrect API key provided: send it as 'Authorization: Bearer <key>'",
                       code="invalid_api_key")
        await _send_json(send, err)


class BodySizeLimit:
    """ASGI middleware: answer 413 when a request body exceeds ``max_bytes``.

    The declared Content-Length is checked first; a chunked body is read up to the limit and
    replayed to the app, so an oversized body is never parsed.
    """

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await self._reject(send, int(declared))
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return await self.app(scope, _replay([message], receive), send)
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            if size > self.max_bytes:
                return await self._reject(send, size)
        body = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        await self.app(scope, _replay([body], receive), send)

    async def _reject(self, send, size: int) -> None:
        err = APIError(413, f"request body is {size} bytes; this server accepts at most {self.max_bytes} "
                            "(see `zhllama serve --max-request-bytes`)", code="request_too_large")
        await _send_json(send, err)


async def _send_json(send, err: APIError) -> None:
    """Answer ``err`` from ASGI middleware, before FastAPI sees the request."""
    payload = json.dumps(err.body()).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in err.headers().items()]
    await send({"type": "http.response.start", "status": err.status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


def _replay(messages: list, receive):
    async def replayed():
        return messages.pop(0) if messages else await receive()
    return replayed

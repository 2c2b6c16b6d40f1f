"""What every handler shares: JSON responses, errors as JSON problems, bounded body reading,
and the security headers every response carries."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from .._errors import (
    BackendError,
    BackendTimeoutError,
    BackendUnavailableError,
    ConfigStoreError,
    CursorExpiredError,
    ImportConflictError,
    ImportFormatError,
    InvalidConfigError,
    InvalidIdentifierError,
    UnsupportedOperationError,
    VersionConflictError,
)
from .._json_text import unique_keys
from .._validation import parse_count

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Set once a handler has begun a streamed answer: a later failure can only cut it short.
STREAMING = web.RequestKey("confstore_streaming", bool)
RequestModel = TypeVar("RequestModel", bound=BaseModel)
# The body once read, so a request's body can be read again (by the idempotency check first).
BODY = web.RequestKey("confstore_body", bytes)

JSON_CONTENT_TYPE = "application/json"
# Below asyncio's low-water mark a transport is never paused, so a write there never waits.
_ROOMY_BUFFER = 16 * 1024
# API answers hold configs and secrets: never cached, never framed, never sniffed as HTML.
API_CSP = "default-src 'none'; frame-ancestors 'none'"
# The console (static files at /): its own scripts, styles and images, and the API.
CONSOLE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)


class ApiError(Exception):
    """An error answer: ``status``, a stable ``type`` and details merged into the JSON body."""

    def __init__(self, status: int, kind: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.message = message
        self.details = details
        self.headers: dict[str, str] = {}


def problem(error: ApiError) -> web.Response:
    body = {"type": error.kind, "status": error.status, "message": error.message}
    body.update({name: value for name, value in error.details.items() if value is not None})
    return json_response(body, status=error.status, headers=error.headers)


def json_response(
    data: Any, *, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return web.Response(
        text=text, status=status, content_type=JSON_CONTENT_TYPE, headers=headers or None
    )


def api_error_for(error: ConfigStoreError) -> ApiError:
    """The HTTP answer for a confstore error: 400/422 bad input, 409/412 conflicts, 410 an
    expired cursor, 501 an operation the store does not offer, 503 an outage, 504 a timeout (the outcome is unknown), 502 anything else."""
    message = str(error)
    if isinstance(error, InvalidIdentifierError):
        return ApiError(400, "invalid_identifier", message, field=error.field)
    if isinstance(error, InvalidConfigError):
        kind = "invalid_cursor" if error.field == "cursor" else "invalid_config"
        return ApiError(400 if kind == "invalid_cursor" else 422, kind, message, field=error.field)
    if isinstance(error, VersionConflictError):
        return ApiError(
            412, "version_conflict", message, expected=error.expected, actual=error.actual
        )
    if isinstance(error, ImportFormatError):
        return ApiError(422, "import_format", message)
    if isinstance(error, ImportConflictError):
        return ApiError(409, "import_conflict", message, version=error.version)
    if isinstance(error, CursorExpiredError):
        return ApiError(410, "cursor_expired", message)
    if isinstance(error, UnsupportedOperationError):
        return ApiError(501, "unsupported", message)
    if isinstance(error, BackendTimeoutError):
        return ApiError(504, "backend_timeout", message)
    if isinstance(error, BackendUnavailableError):
        return ApiError(503, "backend_unavailable", message)
    if isinstance(error, BackendError):
        return ApiError(502, "backend_error", message)
    return ApiError(500, "internal_error", message)


_HTTP_KINDS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    413: "payload_too_large",
    415: "unsupported_media_type",
    431: "request_header_fields_too_large",
    500: "internal_error",
    504: "gateway_timeout",
}


def api_error_kind(status: int) -> str:
    """The ``type`` of an error answer of ``status`` that has no more specific one."""
    return _HTTP_KINDS.get(status, "http_error")


def api_error_for_http(exc: web.HTTPException) -> ApiError:
    """aiohttp's own answers (no route, wrong method, a body over the limit) as JSON problems."""
    kind = api_error_kind(exc.status)
    message = exc.reason if exc.status != 404 else "no such resource"
    error = ApiError(exc.status, kind, message)
    allow = exc.headers.get("Allow")
    if allow is not None:
        error.headers["Allow"] = allow
    return error


def security_headers(response: web.StreamResponse, *, console: bool = False) -> None:
    """Headers every answer carries; the console's pages get their own CSP."""
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "no-referrer")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Content-Security-Policy", CONSOLE_CSP if console else API_CSP)
    headers.setdefault("Cache-Control", "no-cache" if console else "no-store")


async def read_body(request: web.Request, limit: int, timeout: float) -> bytes:
    """The request body, at most ``limit`` bytes, arriving within ``timeout`` seconds.

    413 as soon as Content-Length (or the bytes received) pass the limit; 408 for a client too
    slow to send it. Read again, it is the same body.
    """
    if BODY in request:
        return request[BODY]
    if request.content_length is not None and request.content_length > limit:
        raise _too_large(limit)
    chunks = []
    received = 0
    try:
        async with asyncio.timeout(timeout):
            while chunk := await request.content.read(64 * 1024):
                received += len(chunk)
                if received > limit:
                    raise _too_large(limit)
                chunks.append(chunk)
    except TimeoutError:
        error = ApiError(
            408, "request_timeout", f"the request body did not arrive within {timeout:g} s"
        )
        error.headers["Connection"] = "close"
        raise error from None
    request[BODY] = b"".join(chunks)
    return request[BODY]


async def write_within(
    request: web.Request, response: web.StreamResponse, data: bytes, timeout: float
) -> None:
    """Write part of a streamed answer; a client that does not take it within ``timeout``
    seconds gets TimeoutError (and its connection dropped), never a handler stuck forever."""
    transport = request.transport
    if transport is not None and transport.get_write_buffer_size() + len(data) <= _ROOMY_BUFFER:
        await response.write(data)  # the buffer has room: this write cannot wait for the client
        return
    async with asyncio.timeout(timeout):
        await response.write(data)


def _too_large(limit: int) -> ApiError:
    error = ApiError(413, "payload_too_large", f"the request body is over {limit} bytes")
    error.headers["Connection"] = "close"
    return error


def require_json(request: web.Request) -> None:
    if request.content_type != JSON_CONTENT_TYPE:
        raise ApiError(
            415,
            "unsupported_media_type",
            f"send the body as {JSON_CONTENT_TYPE}, not {request.content_type or 'nothing'}",
        )


def parse_json(body: bytes) -> Any:
    """Strict JSON: UTF-8, no NaN or Infinity, no key twice in an object; 400 malformed_json
    otherwise."""
    try:
        return json.loads(
            body.decode("utf-8"), parse_constant=_reject_constant, object_pairs_hook=unique_keys
        )
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ApiError(400, "malformed_json", f"the body is not valid JSON: {exc}") from None


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


async def read_model(
    request: web.Request,
    model: type[RequestModel],
    *,
    limit: int,
    timeout: float,
    optional: bool = False,
) -> RequestModel:
    """Read and validate a JSON body as ``model``; 415, 400, 413 or 422 on failure.

    With ``optional=True`` an empty body stands for ``{}``.
    """
    body = await read_body(request, limit, timeout)
    if optional and not body:
        return model.model_validate({})
    require_json(request)
    return validate_model(model, parse_json(body))


def validate_model(model: type[RequestModel], data: Any) -> RequestModel:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or None
        where = f"{field}: " if field else ""
        raise ApiError(422, "invalid_config", f"{where}{first['msg']}", field=field) from None


def query_param(request: web.Request, name: str) -> str | None:
    """The query parameter ``name`` (None when absent); 400 when it is given more than once,
    since readers differ on which one counts (a proxy in front may check the other)."""
    values = request.query.getall(name, [])
    if len(values) > 1:
        raise ApiError(
            400,
            "invalid_config",
            f"?{name}= is given {len(values)} times; give it once",
            field=name,
        )
    return values[0] if values else None


def query_int(request: web.Request, name: str, *, minimum: int, default: int | None) -> int | None:
    text = query_param(request, name)
    if text is None or text == "":
        return default
    number = parse_count(text)
    if number is None or number < minimum:
        raise ApiError(
            400, "invalid_config", f"?{name}= must be an integer >= {minimum}", field=name
        )
    return number


def query_bool(request: web.Request, name: str) -> bool:
    text = (query_param(request, name) or "").lower()
    if text in ("", "0", "false", "no"):
        return False
    if text in ("1", "true", "yes"):
        return True
    raise ApiError(400, "invalid_config", f"?{name}= must be true or false", field=name)

"""HTTP plumbing shared by HTTP backends (our Vespa and Elasticsearch plugins, and third parties).

``HttpClient`` owns one aiohttp session per store, puts a timeout on every call, retries what is
safe to retry with capped exponential backoff and full jitter, and translates aiohttp errors into
confstore errors once::

    connection refused, DNS failure             -> BackendUnavailableError  (request not sent)
    timeout, connection dropped after sending   -> BackendTimeoutError      (outcome unknown)
    429/5xx still failing after the retries     -> BackendUnavailableError
    any other aiohttp error                     -> BackendError

and ``HttpResponse.error()`` turns an unexpected answer into one: 429/5xx
BackendUnavailableError, 401/403 PermissionDeniedError, any other status BackendError.

``HttpClient.stream`` sends one request and hands over its response while the body is still
arriving (watch streams, server-sent events), translating errors the same way.

Whether a request may be repeated is the caller's call (``idempotent=``): a conditional write whose
connection dropped must be resolved by reading back, never by sending it again. Note that aiohttp
itself re-sends a PUT or DELETE once when a kept-alive connection fails, so a backend must expect a
412/409 answer to a write that did apply (see "How writes work" for each plugin in the README).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import random
import ssl
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import aiohttp
from yarl import URL

from ._errors import (
    BackendError,
    BackendTimeoutError,
    BackendUnavailableError,
    PermissionDeniedError,
)

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_BODY_EXCERPT = 300
_NO_AIOHTTP_TIMEOUT = aiohttp.ClientTimeout(total=None)
# aiohttp warns (ResourceWarning) about bodies over 1 MiB given as bytes; stream those instead.
_LARGE_BODY = 1024 * 1024


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How many times to try a request and how long to wait between tries.

    ``retry_statuses`` are retried for idempotent requests; ``unapplied_statuses`` (the server
    refused the request before acting on it, e.g. 429) are retried for every request.
    """

    attempts: int = 4
    base_delay: float = 0.05
    max_delay: float = 2.0
    retry_statuses: frozenset[int] = frozenset({429, 502, 503, 504})
    unapplied_statuses: frozenset[int] = frozenset({429})

    def delay(self, attempt: int, retry_after: str | None = None) -> float:
        """Full-jitter backoff for the ``attempt``-th retry (1-based), capped; honours Retry-After."""
        ceiling = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        if retry_after is not None:
            with contextlib.suppress(ValueError):
                return min(self.max_delay, max(0.0, float(retry_after)))
        return random.uniform(0, ceiling)


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """What a request hook sees before every attempt."""

    method: str
    url: str
    attempt: int


RequestHook = Callable[[RequestInfo], None]


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """A fully read response."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    method: str = ""
    url: str = ""

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body as JSON; BackendError if it is not JSON."""
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise BackendError(
                f"{self.method} {self.url}: answer is not JSON: {self.text[:_BODY_EXCERPT]!r}"
            ) from exc

    def json_or_none(self) -> Any:
        """The body as JSON, or None when it is not JSON (for answers whose shape tells)."""
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def error(self, what: str = "unexpected answer") -> BackendError:
        """A confstore error describing this response: 429/5xx unavailable, 401/403 permission
        denied, anything else BackendError."""
        message = (
            f"{what}: {self.method} {self.url} -> HTTP {self.status}: {self.text[:_BODY_EXCERPT]}"
        )
        if self.status == 429 or self.status >= 500:
            return BackendUnavailableError(message)
        if self.status in (401, 403):
            return PermissionDeniedError(message)
        return BackendError(message)


@dataclass(frozen=True, slots=True)
class HttpStream:
    """A response whose body is read as it arrives (see ``HttpClient.stream``)."""

    status: int
    headers: Mapping[str, str]
    method: str
    url: str
    _response: aiohttp.ClientResponse = field(repr=False)

    async def read(self) -> HttpResponse:
        """The rest of the body, as a whole response (for an error answer)."""
        with map_exceptions(self.method, self.url):
            body = await self._response.read()
        return HttpResponse(self.status, self.headers, body, self.method, self.url)

    async def lines(self, *, max_line_bytes: int = 256 * 1024 * 1024) -> AsyncIterator[bytes]:
        """The body split at ``\\n`` as it arrives (without the newline); a last line without
        one is yielded when the body ends. A longer line than ``max_line_bytes`` is a BackendError."""
        pending = bytearray()
        with map_exceptions(self.method, self.url):
            async for chunk in self._response.content.iter_any():
                searched = len(pending)
                pending += chunk
                while (end := pending.find(b"\n", searched)) >= 0:
                    yield bytes(pending[:end])
                    del pending[: end + 1]
                    searched = 0
                if len(pending) > max_line_bytes:
                    raise BackendError(
                        f"{self.method} {self.url}: a line over {max_line_bytes} bytes"
                    )
        if pending:
            yield bytes(pending)


@dataclass
class HttpClient:
    """One aiohttp session to one server, opened lazily, reused for every call, closed by ``close()``."""

    base_url: str
    timeout: float = 10.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    headers: Mapping[str, str] = field(default_factory=dict)
    ssl_context: ssl.SSLContext | None = None
    connection_limit: int = 64
    request_hooks: list[RequestHook] = field(default_factory=list)
    _session: aiohttp.ClientSession | None = field(default=None, init=False, repr=False)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    def url(self, path: str) -> str:
        """``base_url`` joined with ``path``; the path must already be percent-encoded."""
        return self.base_url.rstrip("/") + "/" + path.lstrip("/")

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        data: bytes | str | None = None,
        content_type: str | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
        timeout: float | None = None,
        retry: RetryPolicy | None = None,
    ) -> HttpResponse:
        """Send a request and return the response, whatever its status, once retries are done.

        ``path`` must be percent-encoded by the caller (it is sent as given); ``params`` are
        encoded here. ``idempotent`` defaults to True for GET, HEAD and OPTIONS only: a request
        that is not idempotent is re-sent only after an answer that proves it was not applied.
        ``retry`` overrides the client's policy for this call (e.g. one attempt for a health probe).
        """
        method = method.upper()
        safe = method in IDEMPOTENT_METHODS if idempotent is None else idempotent
        body, request_headers = _encode_body(json_body, data, content_type, headers)
        url = URL(self.url(path), encoded=True)
        if params:
            url = url.update_query(params)
        policy = retry or self.retry
        statuses = policy.retry_statuses if safe else policy.unapplied_statuses
        for attempt in range(1, policy.attempts + 1):
            for hook in self.request_hooks:
                hook(RequestInfo(method, str(url), attempt))
            last_attempt = attempt == policy.attempts
            try:
                response = await self._send(method, url, body, request_headers, timeout)
            except BackendUnavailableError:
                if last_attempt:
                    raise
            except BackendTimeoutError:
                if last_attempt or not safe:
                    raise
            else:
                if response.status not in statuses or last_attempt:
                    return response
                await asyncio.sleep(policy.delay(attempt, response.headers.get("Retry-After")))
                continue
            await asyncio.sleep(policy.delay(attempt))
        raise AssertionError("unreachable: the last attempt returns or raises")

    @contextlib.asynccontextmanager
    async def stream(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> AsyncIterator[HttpStream]:
        """Send one request (never repeated) and yield its response once the headers arrive.

        Reaching the server and getting the headers is bounded by ``timeout`` (default: the
        client's); reading the body is not, so bound it yourself (``asyncio.timeout``). The
        connection is closed when the block ends, whatever was read. Errors are translated as
        for ``request``.
        """
        method = method.upper()
        url = URL(self.url(path), encoded=True)
        for hook in self.request_hooks:
            hook(RequestInfo(method, str(url), 1))
        body, request_headers = _encode_body(json_body, None, None, headers)
        session = self._get_session()
        with map_exceptions(method, str(url)):
            async with asyncio.timeout(self.timeout if timeout is None else timeout):
                response = await session.request(
                    method, url, data=body, headers=request_headers, timeout=_NO_AIOHTTP_TIMEOUT
                )
        try:
            yield HttpStream(response.status, response.headers, method, str(url), response)
        finally:
            # A stream is cut off, not finished: abort the connection rather than close it, so
            # a TLS connection does not wait for the peer's goodbye (and is not left half
            # closed when the event loop ends).
            connection = response.connection
            if connection is not None and connection.transport is not None:
                connection.transport.abort()
            response.close()

    async def _send(
        self,
        method: str,
        url: URL,
        body: bytes | None,
        headers: Mapping[str, str],
        timeout: float | None,
    ) -> HttpResponse:
        session = self._get_session()
        # asyncio.timeout rather than aiohttp's own: when a caller's timeout fires too, a nested
        # asyncio.timeout lets the caller's cancellation through instead of reporting ours.
        with map_exceptions(method, str(url)):
            request_body: bytes | io.BytesIO | None = body
            if body is not None and len(body) > _LARGE_BODY:
                request_body = io.BytesIO(body)  # a fresh stream per attempt
            async with asyncio.timeout(self.timeout if timeout is None else timeout):
                async with session.request(
                    method, url, data=request_body, headers=headers, timeout=_NO_AIOHTTP_TIMEOUT
                ) as response:
                    payload = await response.read()
                    return HttpResponse(
                        response.status, response.headers, payload, method, str(url)
                    )

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self.connection_limit, ssl=self.ssl_context or True
            )
            self._session = aiohttp.ClientSession(headers=dict(self.headers), connector=connector)
        return self._session


@contextlib.contextmanager
def map_exceptions(method: str, url: str) -> Iterator[None]:
    """Translate aiohttp and timeout errors into confstore errors, chaining the original."""
    where = f"{method} {url}"
    try:
        yield
    except aiohttp.ClientConnectorError as exc:
        raise BackendUnavailableError(f"{where}: cannot connect: {exc}") from exc
    except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
        raise BackendTimeoutError(f"{where}: no answer in time; the outcome is unknown") from exc
    except (
        aiohttp.ServerDisconnectedError,
        aiohttp.ClientOSError,
        aiohttp.ClientPayloadError,
    ) as exc:
        raise BackendTimeoutError(
            f"{where}: connection dropped ({exc}); the outcome is unknown"
        ) from exc
    except aiohttp.ClientError as exc:
        raise BackendError(f"{where}: {exc}") from exc


def auth_headers(
    *,
    username: str | None = None,
    password: str | None = None,
    api_key: str | None = None,
    bearer_token: str | None = None,
) -> dict[str, str]:
    """The Authorization header for basic auth, an API key (``ApiKey``) or a bearer token."""
    if bearer_token:
        return {"Authorization": f"Bearer {bearer_token}"}
    if api_key:
        return {"Authorization": f"ApiKey {api_key}"}
    if username is not None:
        token = base64.b64encode(f"{username}:{password or ''}".encode()).decode("ascii")
        return {"Authorization": f"Basic {token}"}
    return {}


def make_ssl_context(
    *,
    ca_file: str | None = None,
    cert_file: str | None = None,
    key_file: str | None = None,
    verify: bool = True,
) -> ssl.SSLContext:
    """A client TLS context: a custom CA, an optional client certificate (mTLS), or no verification."""
    context = ssl.create_default_context(cafile=ca_file)
    if cert_file:
        context.load_cert_chain(cert_file, key_file)
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _encode_body(
    json_body: Any,
    data: bytes | str | None,
    content_type: str | None,
    headers: Mapping[str, str] | None,
) -> tuple[bytes | None, dict[str, str]]:
    request_headers = dict(headers or {})
    body: bytes | None = None
    if json_body is not None:
        body = json.dumps(
            json_body, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ).encode()
        request_headers.setdefault("Content-Type", content_type or "application/json")
    elif data is not None:
        body = data.encode() if isinstance(data, str) else data
        if content_type:
            request_headers.setdefault("Content-Type", content_type)
    return body, request_headers

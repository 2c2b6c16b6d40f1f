"""Idempotency keys: a write sent again with the same ``Idempotency-Key`` gets its first answer
again instead of being applied twice.

A client that lost the answer to a write (a dropped connection, a timeout) cannot know whether
it was applied; sending it again with the same key is safe. The server remembers, per token,
the answers of recent keyed writes: a repeat with the same request (method, path and query,
If-Match, If-None-Match, Content-Type and body) gets the stored answer (with
``Idempotent-Replayed: true``), one with another request gets 422 ``idempotency_key_reused``,
and one that arrives while the first is still running waits for it (409
``idempotency_key_in_use`` if it takes longer than the client timeout).

Answers with a status of 500 or more are not remembered (the write may not have happened, or
the server cannot know): a repeat runs again. Keys live in memory only, so a restarted server
has forgotten them.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

from .._errors import ConfigStoreError
from ._auth import authorize
from ._http import ApiError, Handler, api_error_for, problem, read_body
from ._settings import SETTINGS, ServerSettings
from ._tokens import Role

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255
# The request headers that change what a write does, so a repeat must send them unchanged.
_FINGERPRINT_HEADERS = ("If-Match", "If-None-Match", "Content-Type")
# The answer headers a replay repeats (the rest are added afresh by the middleware).
_REPLAYED_HEADERS = ("ETag", "Content-Type")


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    """A remembered answer: what a repeat of its write gets back."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes

    @classmethod
    def of(cls, response: web.StreamResponse) -> StoredAnswer | None:
        """What to remember of ``response``: None for an answer of 500 or more (the write may
        not have happened) or one that is not a whole body (nothing to replay)."""
        if response.status >= 500 or not isinstance(response, web.Response):
            return None
        body = response.body
        if not isinstance(body, bytes):
            return None
        headers = tuple(
            (name, response.headers[name]) for name in _REPLAYED_HEADERS if name in response.headers
        )
        return cls(response.status, headers, body)

    def replay(self) -> web.Response:
        response = web.Response(status=self.status, body=self.body, headers=dict(self.headers))
        response.headers[REPLAYED_HEADER] = "true"
        return response


@dataclass(slots=True)
class _Record:
    fingerprint: bytes
    started: float
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    answer: StoredAnswer | None = None

    @property
    def size(self) -> int:
        return 0 if self.answer is None else len(self.answer.body) + 200


@dataclass(slots=True)
class _TokenKeys:
    records: collections.OrderedDict[str, _Record] = field(default_factory=collections.OrderedDict)
    stored_bytes: int = 0


class IdempotencyKeys:
    """The answers of recent keyed writes, per token, bounded in time and memory.

    A key is remembered for ``ttl`` seconds after its write began. Each token keeps at most
    ``max_keys`` keys and ``max_bytes`` of answers; beyond that its oldest finished ones are
    forgotten first (the newest answer is always kept, whatever its size).
    """

    def __init__(
        self,
        *,
        ttl: float,
        max_keys: int,
        max_bytes: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.max_keys = max_keys
        self.max_bytes = max_bytes
        self._clock = clock
        self._tokens: dict[str, _TokenKeys] = {}
        self._swept_at = clock()

    @classmethod
    def from_settings(cls, settings: ServerSettings) -> IdempotencyKeys:
        return cls(
            ttl=settings.idempotency_ttl,
            max_keys=settings.idempotency_keys_per_token,
            max_bytes=settings.idempotency_bytes_per_token,
        )

    def __len__(self) -> int:
        return sum(len(keys.records) for keys in self._tokens.values())

    async def claim(
        self, token_id: str, key: str, fingerprint: bytes, *, wait: float
    ) -> StoredAnswer | _Record:
        """The stored answer of ``key``, or a new record the caller must ``finish``.

        422 if the key was used for another request; waits for a write of the same key still
        running (409 after ``wait`` seconds).
        """
        while True:
            self._sweep()
            keys = self._tokens.setdefault(token_id, _TokenKeys())
            record = keys.records.get(key)
            if record is None:
                record = _Record(fingerprint, self._clock())
                keys.records[key] = record
                self._evict(keys, keep=key)
                return record
            if record.fingerprint != fingerprint:
                raise ApiError(
                    422,
                    "idempotency_key_reused",
                    f"this {IDEMPOTENCY_HEADER} was used for another request; use a new key "
                    "for each write",
                    field="idempotency_key",
                )
            if record.answer is not None:
                return record.answer
            try:
                async with asyncio.timeout(wait):
                    await record.finished.wait()
            except TimeoutError:
                error = ApiError(
                    409,
                    "idempotency_key_in_use",
                    f"a request with this {IDEMPOTENCY_HEADER} is still running; try again",
                )
                error.headers["Retry-After"] = "1"
                raise error from None

    def finish(self, token_id: str, key: str, record: _Record, answer: StoredAnswer | None) -> None:
        """End the write of ``record``: remember ``answer``, or with None forget the key."""
        keys = self._tokens.get(token_id)
        current = keys is not None and keys.records.get(key) is record
        if keys is not None and current:
            if answer is None:
                del keys.records[key]
            else:
                record.answer = answer
                keys.stored_bytes += record.size
                self._evict(keys, keep=key)
        record.finished.set()

    def _evict(self, keys: _TokenKeys, *, keep: str) -> None:
        """Forget the oldest finished keys while over the bounds, never ``keep``."""
        while len(keys.records) > self.max_keys or keys.stored_bytes > self.max_bytes:
            oldest = next(
                (
                    key
                    for key, record in keys.records.items()
                    if record.answer is not None and key != keep
                ),
                None,
            )
            if oldest is None:
                return
            keys.stored_bytes -= keys.records.pop(oldest).size

    def _sweep(self) -> None:
        """Forget expired keys of every token (at most once a second)."""
        now = self._clock()
        if now - self._swept_at < 1.0:
            return
        self._swept_at = now
        for token_id, keys in list(self._tokens.items()):
            records = keys.records
            while records:
                key, record = next(iter(records.items()))
                if record.answer is None or now - record.started < self.ttl:
                    break
                keys.stored_bytes -= records.pop(key).size
            if not records:
                del self._tokens[token_id]


IDEMPOTENCY = web.AppKey("confstore_idempotency", IdempotencyKeys)
BodyLimit = Callable[[web.Request], int]


def idempotent_write(role: Role, body_limit: BodyLimit) -> Callable[[Handler], Handler]:
    """Make a write handler honour ``Idempotency-Key``.

    The caller's role and tenant are checked first (as the handler does), then the body is read
    within ``body_limit`` (the handler reads the same body again), then the key is claimed.
    """

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def run(request: web.Request) -> web.StreamResponse:
            key = request.headers.get(IDEMPOTENCY_HEADER)
            if key is None:
                return await handler(request)
            identity = authorize(request, role=role, tenant_id=request.match_info["tenant"])
            _check_key(key)
            settings = request.app[SETTINGS]
            body = await read_body(request, body_limit(request), settings.client_timeout)
            keys = request.app[IDEMPOTENCY]
            claimed = await keys.claim(
                identity.sha256, key, _fingerprint(request, body), wait=settings.client_timeout
            )
            if isinstance(claimed, StoredAnswer):
                return claimed.replay()
            answer: StoredAnswer | None = None
            try:
                response = await _answer(handler, request)
                answer = StoredAnswer.of(response)
                return response
            finally:
                keys.finish(identity.sha256, key, claimed, answer)

        return run

    return decorate


async def _answer(handler: Handler, request: web.Request) -> web.StreamResponse:
    """The handler's answer, its refusals included (they are remembered as answers too)."""
    try:
        return await handler(request)
    except ApiError as error:
        return problem(error)
    except ConfigStoreError as error:
        return problem(api_error_for(error))


def _check_key(key: str) -> None:
    if not 0 < len(key) <= MAX_KEY_LENGTH or not all("!" <= char <= "~" for char in key):
        raise ApiError(
            400,
            "invalid_idempotency_key",
            f"{IDEMPOTENCY_HEADER} must be 1 to {MAX_KEY_LENGTH} visible ASCII characters",
            field="idempotency_key",
        )


def _fingerprint(request: web.Request, body: bytes) -> bytes:
    digest = hashlib.sha256()
    parts = [request.method, request.raw_path]
    parts += [request.headers.get(name, "") for name in _FINGERPRINT_HEADERS]
    for part in parts:
        encoded = part.encode("utf-8", "surrogateescape")
        digest.update(len(encoded).to_bytes(8, "big") + encoded)
    digest.update(body)
    return digest.digest()

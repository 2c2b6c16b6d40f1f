"""Who is calling: bearer tokens checked against the tokens file, failed attempts throttled,
and the role and tenant checks every handler makes."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass, field

from aiohttp import web

from .._errors import ConfigStoreError
from ._cursors import CursorSeal
from ._http import ApiError
from ._tokens import AccessToken, Role, TokenFile, TokenSet

logger = logging.getLogger("confstore.server")

IDENTITY = web.RequestKey("confstore_identity", AccessToken)


@dataclass
class FailureThrottle:
    """Slows down guessing: per client address, failed authentications fill a bucket that
    drains at one failure per ``refill_seconds``; a full bucket (``burst`` failures) answers
    429 with Retry-After to every authenticated request from that address, without checking the
    token (so a guess made while throttled tells nothing), until it drains below full.
    """

    burst: int = 10
    refill_seconds: float = 6.0
    max_addresses: int = 10_000
    _levels: dict[str, tuple[float, float]] = field(default_factory=dict)

    def retry_after(self, address: str) -> float:
        """Seconds until ``address`` may try again (0: it may try now)."""
        # Throttled once ``burst`` failures have not drained below room for one more.
        excess = self._level(address, time.monotonic()) - (self.burst - 1)
        return max(0.0, excess * self.refill_seconds)

    def failed(self, address: str) -> None:
        now = time.monotonic()
        if len(self._levels) >= self.max_addresses:
            self._forget_drained(now)
        self._levels[address] = (self._level(address, now) + 1, now)

    def _level(self, address: str, now: float) -> float:
        level, since = self._levels.get(address, (0.0, now))
        return max(0.0, level - (now - since) / self.refill_seconds)

    def _forget_drained(self, now: float) -> None:
        for address in [a for a in self._levels if self._level(a, now) == 0.0]:
            del self._levels[address]
        if len(self._levels) >= self.max_addresses:  # a flood of addresses: start over
            self._levels.clear()


class Authenticator:
    """Holds the tokens of the tokens file, reloaded when the file changes (within a second),
    so a created or revoked token takes effect without a restart."""

    def __init__(self, token_file: TokenFile, throttle: FailureThrottle | None = None) -> None:
        self.token_file = token_file
        self.throttle = throttle or FailureThrottle()
        self._tokens = token_file.load()
        self._signature = token_file.signature()
        self.cursor_seal = CursorSeal(self._tokens.cursor_key)
        self._watcher: asyncio.Task[None] | None = None

    @property
    def tokens(self) -> TokenSet:
        return self._tokens

    def start(self, interval: float = 1.0) -> None:
        self._watcher = asyncio.get_running_loop().create_task(
            self._watch_file(interval), name="confstore-server-tokens"
        )

    async def stop(self) -> None:
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)

    async def reload_if_changed(self) -> None:
        signature = await asyncio.to_thread(self.token_file.signature)
        if signature == self._signature:
            return
        try:
            tokens = await asyncio.to_thread(self.token_file.load)
        except ConfigStoreError as exc:
            if signature is None:  # the file is gone: nobody may call any more
                tokens = TokenSet((), self._tokens.cursor_key)
            else:
                logger.warning("confstore: keeping the previous tokens: %s", exc)
                return
        self._signature = signature
        if tokens.cursor_key != self._tokens.cursor_key:
            self.cursor_seal = CursorSeal(tokens.cursor_key)
        self._tokens = tokens
        logger.info("confstore: tokens reloaded (%d tokens)", len(tokens.tokens))

    def current(self, identity: AccessToken) -> bool:
        """True while ``identity`` is still a valid token (not revoked or changed)."""
        return identity in self._tokens.tokens

    def authenticate(self, request: web.Request) -> AccessToken:
        """The token of ``request``: 401 without a valid one, 429 while its address is throttled."""
        header = request.headers.get("Authorization")
        if header is None:
            raise unauthorized("send Authorization: Bearer <token>")
        address = request.remote or "unknown"
        wait = self.throttle.retry_after(address)
        if wait > 0:
            error = ApiError(
                429,
                "too_many_requests",
                "too many failed authentications from this address; try again later",
            )
            error.headers["Retry-After"] = str(math.ceil(wait))
            raise error
        scheme, _, presented = header.partition(" ")
        identity = None
        if scheme.lower() == "bearer" and presented.strip():
            identity = self._tokens.verify(presented.strip())
        if identity is None:
            self.throttle.failed(address)
            raise unauthorized("the token is not valid (unknown, revoked or malformed)")
        return identity

    async def _watch_file(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.reload_if_changed()
            except OSError as exc:
                logger.warning("confstore: cannot check the tokens file: %s", exc)


def unauthorized(message: str) -> ApiError:
    error = ApiError(401, "unauthorized", message)
    error.headers["WWW-Authenticate"] = 'Bearer realm="confstore"'
    return error


def authorize(
    request: web.Request, *, role: Role, tenant_id: str | None = None, all_tenants: bool = False
) -> AccessToken:
    """The caller's token if it has ``role`` and covers ``tenant_id`` (or every tenant), else 403.

    The tenant is checked before anything reads the store, and the answer is the same whether
    the tenant exists or not, so a token learns nothing about tenants outside its scope.
    """
    identity = request[IDENTITY]
    if tenant_id is not None and not identity.covers(tenant_id):
        raise forbidden(f"token {identity.name!r} has no access to this tenant")
    if all_tenants and not identity.all_tenants:
        raise forbidden(f"token {identity.name!r} is limited to some tenants; this needs all ('*')")
    if not identity.role.allows(role):
        raise forbidden(
            f"token {identity.name!r} has role {identity.role.value}; this needs {role.value}"
        )
    return identity


def forbidden(message: str) -> ApiError:
    return ApiError(403, "forbidden", message)


AUTHENTICATOR = web.AppKey("confstore_authenticator", Authenticator)

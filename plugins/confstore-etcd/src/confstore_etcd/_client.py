"""etcd's v3 JSON gateway over ``confstore.http``: endpoints, failover, auth, answers.

Every call is a ``POST /v3/...`` to one member. What an answer means decides what happens next:

    200                                           done
    connection refused, 503 "no leader",          not applied: the next member, after a backoff
      503 "... Error while dialing ...",            once every member was tried
      429 "too many requests"
    timeout, dropped connection, other 5xx,       unknown outcome: sent again (to the next
      429 "database space exceeded"                 member); every write of the store is a txn
                                                    guarded by a compare, so sending it again
                                                    can never apply it twice
    401 invalid token                             authenticate again, then send again
    403, 401 or 400 "user name is empty"          PermissionDeniedError (no token, no user
      without a user in the URL                     given, or a key outside the user's role)
    400 revision compacted                        CompactedError (the feed turns it into
                                                    CursorExpiredError)
    any other 4xx                                 BackendError naming etcd's message
                                                    (request too large, ...)

Each request carries ``Grpc-Metadata-Hasleader: true``, so a member cut off from its cluster
answers at once (503 "no leader") instead of after etcd's 7 s request timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp

from confstore import (
    BackendError,
    BackendTimeoutError,
    BackendUnavailableError,
    PermissionDeniedError,
)
from confstore.http import HttpClient, HttpResponse, HttpStream, RetryPolicy

_ONE_TRY = RetryPolicy(attempts=1)
_HAS_LEADER = {"Grpc-Metadata-Hasleader": "true"}
_CONNECTIONS_PER_MEMBER = 100


class CompactedError(Exception):
    """A revision asked for is older than etcd's compacted revision (not a confstore error:
    the store turns it into CursorExpiredError)."""

    def __init__(self, compact_revision: int | None) -> None:
        self.compact_revision = compact_revision
        super().__init__(f"revision compacted (compact revision {compact_revision})")


@dataclass(frozen=True, slots=True)
class Answer:
    """A successful answer, and whether an earlier try of the same request had an unknown
    outcome (so a compare that fails now may have been made to fail by that try)."""

    body: dict[str, Any]
    ambiguous: bool

    @property
    def revision(self) -> int:
        return int(self.body.get("header", {}).get("revision", 0))


class _Retry(Exception):
    """Internal: this try failed in a way worth another try (on the next member)."""

    def __init__(self, reason: str, *, unknown_outcome: bool) -> None:
        self.unknown_outcome = unknown_outcome
        super().__init__(reason)


class EtcdClient:
    """One HttpClient per member; requests start at the member that last answered."""

    def __init__(
        self,
        endpoints: list[str],
        *,
        timeout: float,
        retry: RetryPolicy,
        username: str | None = None,
        password: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if not endpoints:
            raise ValueError("an etcd store needs at least one endpoint")
        self.endpoints = list(endpoints)
        self.timeout = timeout
        self.retry = retry
        self._members = [
            HttpClient(
                url,
                timeout=timeout,
                retry=_ONE_TRY,
                ssl_context=ssl_context,
                connection_limit=_CONNECTIONS_PER_MEMBER,
            )
            for url in self.endpoints
        ]
        self._current = 0
        self._username = username
        self._password = password
        self._token: str | None = None
        self._auth_lock: asyncio.Lock | None = None

    @property
    def members(self) -> list[HttpClient]:
        """The HTTP client of each endpoint (tests add request hooks to them)."""
        return self._members

    @property
    def current_endpoint(self) -> str:
        """The member requests go to now."""
        return self.endpoints[self._current]

    async def prefer_leader(self) -> None:
        """Send requests to the leader first: a follower forwards writes and the read-index
        requests of linearizable reads to it, one more hop each. Asks every member's status
        (answered locally, no token needed); a member that does not answer is passed over."""
        if len(self._members) == 1:
            return

        async def leads(member: HttpClient) -> bool:
            with contextlib.suppress(BackendError, ValueError, TypeError, AttributeError):
                response = await member.request(
                    "POST", "v3/maintenance/status", json_body={}, retry=_ONE_TRY
                )
                if response.status == 200:
                    status = response.json()
                    leader = status.get("leader")
                    return bool(leader) and leader == status.get("header", {}).get("member_id")
            return False

        answers = await asyncio.gather(*(leads(member) for member in self._members))
        if True in answers:
            self._current = answers.index(True)

    def forget_token(self) -> None:
        """Authenticate again before the next request (the token was refused)."""
        self._token = None

    async def close(self) -> None:
        for member in self._members:
            await member.close()
        self._token = None

    async def call(
        self, path: str, body: dict[str, Any], *, write: bool = False, login: bool = True
    ) -> Answer:
        """POST ``body`` to ``/v3/{path}``, failing over and retrying as the module says
        (``login=False``: without the auth token, for authenticating).

        Raises BackendUnavailableError when no member could apply it, BackendTimeoutError when
        a write may or may not have been applied, BackendError for a refusal.
        """
        unknown = False
        last: Exception | None = None
        tries = self.retry.attempts * len(self._members)
        for attempt in range(1, tries + 1):
            member = self._current
            try:
                response = await self._members[member].request(
                    "POST",
                    f"v3/{path}",
                    json_body=body,
                    headers=await self._headers() if login else _HAS_LEADER,
                    idempotent=not write,
                )
                return Answer(await self._answer(response), unknown)
            except _Retry as exc:
                unknown = unknown or (write and exc.unknown_outcome)
                last = exc
            except BackendUnavailableError as exc:
                if isinstance(exc.__cause__, aiohttp.ClientConnectorCertificateError):
                    raise BackendError(
                        f"etcd at {self.endpoints[member]}: its TLS certificate is not trusted "
                        f"({exc.__cause__}); give the CA with ?ca_file="
                    ) from exc
                last = exc
            except BackendTimeoutError as exc:
                unknown = unknown or write
                last = exc
            self._fail_over(member)
            if attempt < tries:
                await asyncio.sleep(self._backoff(attempt))
        where = f"etcd ({', '.join(self.endpoints)}): POST /v3/{path}"
        if unknown:
            raise BackendTimeoutError(
                f"{where}: no definite answer; the outcome is unknown: {last}"
            )
        raise BackendUnavailableError(f"{where}: no member could answer: {last}")

    async def _answer(self, response: HttpResponse) -> dict[str, Any]:
        """The JSON of a 200, else the right exception for the answer (see the module)."""
        if response.status == 200:
            body = response.json()
            if not isinstance(body, dict):
                raise response.error("etcd answered with something other than a JSON object")
            return body
        message, code = _error_of(response)
        if response.status == 401 or "auth token" in message or "auth store is old" in message:
            if self._username is not None:
                self._token = None
                raise _Retry(message, unknown_outcome=False)
            raise PermissionDeniedError(f"etcd refused the request ({message}): auth is required")
        if "user name is empty" in message:
            raise PermissionDeniedError(
                "etcd has authentication enabled: give user:password in the store URL"
            )
        if code == 11 and "compacted" in message:
            raise CompactedError(None)
        if "too many requests" in message or "no leader" in message or "dialing" in message:
            raise _Retry(message, unknown_outcome=False)
        if "larger than max" in message or "request is too large" in message:
            raise BackendError(
                f"etcd refused a request as too large ({message}); nothing was written. "
                "The server limit is --max-request-bytes (default 1.5 MiB)"
            )
        if response.status == 429 or response.status >= 500:
            raise _Retry(message, unknown_outcome=True)
        if response.status == 403:
            raise PermissionDeniedError(f"etcd denied access ({message}): check the user's role")
        raise response.error(f"etcd refused the request ({message})")

    @contextlib.asynccontextmanager
    async def watch(
        self, create_request: dict[str, Any]
    ) -> AsyncIterator[AsyncIterator[dict[str, Any]]]:
        """Open a watch stream and yield its messages (the ``result`` objects) as they arrive.

        The stream opens on the current member, else the next ones (a member that refuses it
        counts as failing). It ends when the member goes away; an error frame raises
        BackendUnavailableError.
        """
        async with contextlib.AsyncExitStack() as stack:
            stream = await self._open_watch(stack, create_request)
            messages = _messages(stream)
            try:
                yield messages
            finally:
                await messages.aclose()

    async def _open_watch(
        self, stack: contextlib.AsyncExitStack, create_request: dict[str, Any]
    ) -> HttpStream:
        last: Exception | None = None
        for _ in range(len(self._members)):
            member = self._current
            attempt = contextlib.AsyncExitStack()
            try:
                stream = await attempt.enter_async_context(
                    self._members[member].stream(
                        "POST",
                        "v3/watch",
                        json_body={"create_request": create_request},
                        headers=await self._headers(),
                    )
                )
                if stream.status != 200:
                    await self._answer(await stream.read())
            except (_Retry, BackendUnavailableError, BackendTimeoutError) as exc:
                await attempt.aclose()
                last = exc
                self._fail_over(member)
                continue
            except BaseException:
                await attempt.aclose()
                raise
            await stack.enter_async_context(attempt)
            return stream
        raise BackendUnavailableError(f"etcd ({', '.join(self.endpoints)}): cannot watch: {last}")

    async def health(self, timeout: float) -> bool:
        """True as soon as one member says ``/health`` is true within ``timeout`` seconds."""

        async def probe(member: HttpClient) -> bool:
            with contextlib.suppress(BackendError):
                response = await member.request("GET", "health", timeout=timeout, retry=_ONE_TRY)
                if response.status == 200:
                    with contextlib.suppress(BackendError):
                        body = response.json()
                        return isinstance(body, dict) and str(body.get("health")) == "true"
            return False

        probes = [asyncio.ensure_future(probe(member)) for member in self._members]
        try:
            async with asyncio.timeout(timeout):
                for finished in asyncio.as_completed(probes):
                    if await finished:
                        return True
        except TimeoutError:
            return False
        finally:
            for task in probes:
                task.cancel()
            await asyncio.gather(*probes, return_exceptions=True)
        return False

    def _fail_over(self, member: int) -> None:
        if self._current == member:
            self._current = (member + 1) % len(self._members)

    def _backoff(self, attempt: int) -> float:
        # A failing member is left for the next one at once; a round that failed on every
        # member (an election, a restart) backs off, capped and jittered. ``retry.attempts``
        # counts rounds.
        if attempt % len(self._members):
            return 0.0
        return self.retry.delay(attempt // len(self._members))

    async def _headers(self) -> dict[str, str]:
        if self._username is None:
            return _HAS_LEADER
        token = self._token or await self._authenticate()
        return {**_HAS_LEADER, "Authorization": token}

    async def _authenticate(self) -> str:
        if self._auth_lock is None:
            self._auth_lock = asyncio.Lock()
        async with self._auth_lock:
            if self._token is None:
                credentials = {"name": self._username, "password": self._password or ""}
                answer = await self.call("auth/authenticate", credentials, login=False)
                token = answer.body.get("token")
                if not token:
                    raise BackendError("etcd gave no token: is authentication enabled?")
                self._token = str(token)
            return self._token


async def _messages(stream: HttpStream) -> AsyncGenerator[dict[str, Any]]:
    async for line in stream.lines():
        if not line.strip():
            continue
        try:
            frame = json.loads(line)
        except ValueError as exc:
            raise BackendError(f"etcd watch stream: not JSON: {line[:200]!r}") from exc
        if "error" in frame:
            raise BackendUnavailableError(f"etcd watch stream ended: {frame['error']}")
        result = frame.get("result")
        if isinstance(result, dict):
            yield result


def _error_of(response: HttpResponse) -> tuple[str, int | None]:
    """etcd's error message and gRPC code from an error answer (also when it is not JSON)."""
    try:
        body = json.loads(response.body)
    except ValueError:
        return response.text[:300], None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):  # a stream's error frame
            return str(error.get("message", "")), _int_or_none(error.get("grpc_code"))
        return str(body.get("message") or error or ""), _int_or_none(body.get("code"))
    return response.text[:300], None


def _int_or_none(value: object) -> int | None:
    try:
        return int(value)  # type: ignore[call-overload, no-any-return]
    except (TypeError, ValueError):
        return None

"""RemoteConfigStore: the store contract through ``confstore serve``'s ``/v1`` API.

Each store method is one request (an export is one streamed answer). Every write (put, delete,
import) carries an ``Idempotency-Key`` made for it, kept across its retries: a write whose
connection dropped or timed out (its outcome unknown) is sent again with the same key, and the
server answers a key it has seen with the first answer instead of writing twice. Only when every
attempt ends that way does the write raise BackendTimeoutError. The server's answers map back
to the same confstore errors a local store raises (412 -> VersionConflictError, 410 -> CursorExpiredError, ...);
401 and 403 raise AccessDeniedError.

Hot reload: ``wait_for_changes`` follows the server's ``/v1/watch`` event stream (one connection
per store, opened on first use and kept), so a follower such as ConfigManager polls the change
feed as soon as the server reports a commit instead of after its poll interval.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import json
import logging
import os
import random
import uuid
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote

from confstore import (
    BackendError,
    BackendTimeoutError,
    BackendUnavailableError,
    ChangeBatch,
    ConfigChange,
    ConfigEntry,
    ConfigKey,
    ConfigScope,
    ConfigStore,
    ConfigStoreError,
    CursorExpiredError,
    ImportConflictError,
    ImportFormatError,
    InvalidConfigError,
    InvalidIdentifierError,
    PermissionDeniedError,
    PruneResult,
    RetentionPolicy,
    StoreCapabilities,
    StoreOptions,
    StoreURL,
    UnsupportedOperationError,
    VersionConflictError,
)
from confstore.http import HttpClient, HttpResponse, RetryPolicy, make_ssl_context

logger = logging.getLogger("confstore.remote")

TOKEN_ENVIRONMENT_VARIABLE = "CONFSTORE_TOKEN"
DEFAULT_TIMEOUT = 10.0
_HEALTH_RETRY = RetryPolicy(attempts=1)
_REMEMBERED_CURSORS = 256
_RECONNECT_MAX_SECONDS = 5.0
# Longer than the server's keepalive comments (every 15 s): a stream silent this long is dead.
_EVENT_STREAM_IDLE_SECONDS = 60.0


class AccessDeniedError(PermissionDeniedError):
    """The server refused the request: 401 (no valid token: unknown, revoked or missing) or
    403 (outside the token's role or tenants). ``status`` is the HTTP status."""

    def __init__(self, message: str, *, status: int) -> None:
        self.status = status
        super().__init__(message)


class RemoteConfigStore(ConfigStore):
    """A store served by ``confstore serve`` at ``base_url`` (``http(s)://host:port[/prefix]``).

    The token is ``token``, else the first line of ``token_file`` (read on first use), else
    ``$CONFSTORE_TOKEN``. A ``read`` token sees secrets masked (``***``); give the store a
    ``write`` or ``admin`` token when it must read them (see the README's server section).
    """

    backend_name: ClassVar[str] = "remote"

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        token_file: str | os.PathLike[str] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        ca_file: str | None = None,
        verify: bool = True,
        max_value_bytes: int = 1024 * 1024,
    ) -> None:
        super().__init__(max_value_bytes=max_value_bytes)
        if token is None and token_file is None:
            token = os.environ.get(TOKEN_ENVIRONMENT_VARIABLE) or None
        if token is None and token_file is None:
            raise InvalidConfigError(
                f"the remote store needs a token: add ?token_file=PATH to the URL or set "
                f"${TOKEN_ENVIRONMENT_VARIABLE}",
                field="token",
            )
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._token = token
        self._token_file = None if token_file is None else Path(token_file)
        ssl_context = None
        if base_url.startswith("https:") and (ca_file is not None or not verify):
            ssl_context = make_ssl_context(ca_file=ca_file, verify=verify)
        policy = retry or RetryPolicy()
        self._client = HttpClient(
            self.base_url, timeout=timeout, retry=policy, ssl_context=ssl_context
        )
        # A keyed write may be sent again after any answer that shows it was not applied (429,
        # 503: the server's backend refused it) and after a lost answer, never after a 502 or
        # 504 (the server itself does not know what happened, and remembers no answer).
        self._write_retry = dataclasses.replace(
            policy, retry_statuses=policy.unapplied_statuses | {503}
        )
        self._events = _EventFollower(self)

    @classmethod
    def from_url(cls, url: StoreURL, **options: Any) -> RemoteConfigStore:
        """``confstore+http://host:port[/prefix]?token_file=...&timeout=...&ca=...&verify=...``
        (``token=`` as a keyword of ``open_store``)."""
        reader = StoreOptions("remote", options)
        token = reader.take_str("token")  # for open_store(url, token=...); keep tokens out of URLs
        token_file = reader.take_str("token_file")
        timeout = reader.take_float("timeout", DEFAULT_TIMEOUT, minimum=0.001)
        ca_file = reader.take_str("ca")
        verify = reader.take_bool("verify", True)
        max_value_bytes = reader.take_int("max_value_bytes", 1024 * 1024, minimum=1)
        retry = reader.take_any("retry")
        reader.finish()
        if url.transport not in ("http", "https") or not url.host:
            raise InvalidConfigError(
                f"a remote store URL is confstore+http://host:port or confstore+https://..., "
                f"got {url}",
                field="url",
            )
        prefix = f"/{url.path.strip('/')}" if url.path.strip("/") else ""
        return cls(
            url.base_url + prefix,
            token=token,
            token_file=token_file,
            timeout=timeout,
            retry=retry,
            ca_file=ca_file,
            verify=verify,
            max_value_bytes=max_value_bytes,
        )

    @property
    def capabilities(self) -> StoreCapabilities:
        return StoreCapabilities(persistent=True, shared=True, retention=True)

    async def initialize(self) -> None:
        """Check that the server answers and accepts the token."""
        try:
            await self._call("GET", "/v1/token")
        except BaseException:
            await self._client.close()  # ``async with`` does not close what failed to open
            raise

    async def close(self) -> None:
        await self._events.stop()
        await self._client.close()

    async def _set_config(
        self,
        key: ConfigKey,
        value: dict[str, Any],
        value_json: str,
        *,
        expected_version: int | None,
        updated_by: str | None,
        comment: str | None,
    ) -> ConfigEntry:
        # updated_by is always sent, null included: an admin token's write records exactly it
        # (null: nobody); other tokens' writes are recorded by the token's name.
        fields = json.dumps(
            {"comment": comment, "expected_version": expected_version, "updated_by": updated_by}
        )
        body = '{"value":' + value_json + "," + fields[1:]
        response = await self._call(
            "PUT",
            _config_path(key),
            data=body,
            content_type="application/json",
            key=key,
            write=True,
        )
        return _entry(response.json())

    async def _get_config(self, key: ConfigKey, version: int | None) -> ConfigEntry | None:
        params = {} if version is None else {"version": str(version)}
        response = await self._call("GET", _config_path(key), params=params, absent_ok=True)
        return None if response.status == 404 else _entry(response.json())

    async def _get_config_history(self, key: ConfigKey, limit: int) -> list[ConfigEntry]:
        response = await self._call(
            "GET", _config_path(key) + "/history", params={"limit": str(limit)}
        )
        return [_entry(item) for item in _field(response, "history", list)]

    async def _list_configs(
        self, tenant_id: str, scope: ConfigScope | None, service: str | None
    ) -> list[ConfigEntry]:
        params = {}
        if scope is not None:
            params["scope"] = scope.value
        if service is not None:
            params["service"] = service
        response = await self._call("GET", _tenant_path(tenant_id) + "/configs", params=params)
        return [_entry(item) for item in _field(response, "configs", list)]

    async def _delete_config(
        self, key: ConfigKey, *, purge: bool, updated_by: str | None, comment: str | None
    ) -> bool:
        response = await self._call(
            "DELETE",
            _config_path(key),
            json_body={"purge": purge, "updated_by": updated_by, "comment": comment},
            absent_ok=True,
            write=True,
        )
        return response.status != 404

    async def _list_tenants(self, include_deleted: bool) -> list[str]:
        params = {"include_deleted": "true"} if include_deleted else {}
        response = await self._call("GET", "/v1/tenants", params=params)
        return [str(name) for name in _field(response, "tenants", list)]

    async def _iter_configs(
        self, tenant_id: str, include_history: bool
    ) -> AsyncIterator[ConfigEntry]:
        params = {"history": "true"} if include_history else {}
        response = await self._call("GET", _tenant_path(tenant_id) + "/export", params=params)
        for item in _field(response, "configs", list):
            yield _entry(item)

    async def _import_entries(self, tenant_id: str, entries: list[ConfigEntry], mode: str) -> int:
        document = {
            "format": "confstore-export",
            "format_version": 1,
            "configs": [entry.to_dict() for entry in entries],
        }
        response = await self._call(
            "POST",
            _tenant_path(tenant_id) + "/import",
            params={"mode": mode},
            json_body=document,
            write=True,
        )
        return int(_field(response, "versions_written", int))

    async def _prune(
        self, policy: RetentionPolicy, tenant_id: str | None, dry_run: bool
    ) -> PruneResult:
        """``POST /v1/prune`` (an admin token; for every tenant, one that covers them all)."""
        params = {} if tenant_id is None else {"tenant": tenant_id}
        body = {**policy.to_dict(), "dry_run": dry_run}
        response = await self._call("POST", "/v1/prune", params=params, json_body=body)
        try:
            return PruneResult.from_dict(_field(response, None, dict))
        except InvalidConfigError as exc:
            raise BackendError(f"the server sent a malformed prune report: {exc}") from exc

    async def get_stats(self) -> dict[str, Any]:
        stats = dict(_field(await self._call("GET", "/v1/stats"), None, dict))
        stats["server_backend"] = stats.get("backend")
        stats["backend"] = self.backend_name
        return stats

    async def health_check(self) -> bool:
        try:
            response = await self._client.request(
                "GET", "/v1/health", retry=_HEALTH_RETRY, timeout=min(self.timeout, 5.0)
            )
            return response.status == 200 and response.json().get("healthy") is True
        except (ConfigStoreError, AttributeError):
            return False

    async def current_cursor(self) -> str:
        generation = self._events.generation
        cursor = str(_field(await self._call("GET", "/v1/changes/cursor"), "cursor", str))
        self._events.remember(cursor, generation)
        return cursor

    async def _changes_since(self, cursor: str | None, limit: int) -> ChangeBatch:
        generation = self._events.generation
        params = {"limit": str(limit)}
        if cursor is not None:
            params["cursor"] = cursor
        response = await self._call("GET", "/v1/changes", params=params)
        try:
            changes = tuple(
                ConfigChange.from_dict(item) for item in _field(response, "changes", list)
            )
        except InvalidConfigError as exc:
            raise BackendError(f"the server sent a malformed change: {exc}") from exc
        batch = ChangeBatch(
            changes,
            str(_field(response, "cursor", str)),
            has_more=bool(_field(response, "has_more", bool)),
        )
        self._events.remember(batch.cursor, generation)
        return batch

    async def wait_for_changes(self, cursor: str | None, timeout: float) -> None:
        """Return as soon as the server's event stream reports a commit after ``cursor`` was
        read (at once if one came already), else after ``timeout`` seconds."""
        await self._events.wait(cursor, timeout)

    async def _authorization(self) -> dict[str, str]:
        if self._token is None:
            assert self._token_file is not None
            try:
                text = await asyncio.to_thread(self._token_file.read_text, encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise InvalidConfigError(
                    f"cannot read the token file {self._token_file}: {exc}", field="token_file"
                ) from exc
            lines = text.strip().splitlines()
            if not lines:
                raise InvalidConfigError(
                    f"the token file {self._token_file} is empty", field="token_file"
                )
            self._token = lines[0].strip()
        return {"Authorization": f"Bearer {self._token}"}

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        data: str | None = None,
        content_type: str | None = None,
        key: ConfigKey | None = None,
        absent_ok: bool = False,
        write: bool = False,
    ) -> HttpResponse:
        """Send a request; a 2xx answer (or 404 with ``absent_ok``) is returned, others raised.

        A ``write`` gets a new Idempotency-Key, sent unchanged with each of its retries.
        """
        headers = await self._authorization()
        if write:
            headers["Idempotency-Key"] = uuid.uuid4().hex
        response = await self._client.request(
            method,
            path,
            params=params,
            json_body=json_body,
            data=data,
            content_type=content_type,
            headers=headers,
            idempotent=True if write else None,
            retry=self._write_retry if write else None,
        )
        if 200 <= response.status < 300 or (absent_ok and _is_not_found(response)):
            return response
        raise error_for(response, key)


class _EventFollower:
    """Follows ``/v1/watch`` for a store and wakes ``wait_for_changes`` on every event.

    ``generation`` counts events (and reconnections, after which something may have been
    missed). A cursor returned by ``changes_since`` is remembered with the generation seen when
    its request was sent, so a waiter with that cursor returns at once if an event came since.
    """

    def __init__(self, store: RemoteConfigStore) -> None:
        self._store = store
        self.generation = 0
        self._cursors: collections.OrderedDict[str, int] = collections.OrderedDict()
        self._changed: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def remember(self, cursor: str, generation: int) -> None:
        self._cursors[cursor] = generation
        self._cursors.move_to_end(cursor)
        while len(self._cursors) > _REMEMBERED_CURSORS:
            self._cursors.popitem(last=False)

    async def wait(self, cursor: str | None, timeout: float) -> None:
        self._ensure_running()
        seen = None if cursor is None else self._cursors.get(cursor)
        if seen is not None and self.generation > seen:
            return
        assert self._changed is not None
        changed = self._changed
        try:
            async with asyncio.timeout(timeout):
                await changed.wait()
        except TimeoutError:
            pass

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            if task.get_loop() is asyncio.get_running_loop():
                await asyncio.gather(task, return_exceptions=True)

    def _ensure_running(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop = loop
            self._changed = asyncio.Event()
            self._task = None
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._follow(), name="confstore-remote-events")

    def _bump(self) -> None:
        self.generation += 1
        changed, self._changed = self._changed, asyncio.Event()
        if changed is not None:
            changed.set()

    async def _follow(self) -> None:
        delay = 0.1
        while True:
            try:
                async for _ in self._events():
                    self._bump()
                    delay = 0.1
            except (ConfigStoreError, TimeoutError) as exc:
                logger.debug("confstore: the event stream of %s ended: %r", self._store, exc)
            self._bump()  # changes may have come while it was down: let waiters poll
            await asyncio.sleep(random.uniform(delay / 2, delay))
            delay = min(delay * 2, _RECONNECT_MAX_SECONDS)

    async def _events(self) -> AsyncIterator[str]:
        """The names of the events of one connection to /v1/watch, until it ends.

        A stream silent for longer than the server's keepalive comments come is taken as dead
        (TimeoutError), so a connection lost without a word is noticed and opened again.
        """
        headers = {**await self._store._authorization(), "Accept": "text/event-stream"}
        async with self._store._client.stream("GET", "/v1/watch", headers=headers) as answer:
            if answer.status != 200:
                raise error_for(await answer.read(), None)
            lines = aiter(answer.lines())
            name = "message"
            while True:
                async with asyncio.timeout(_EVENT_STREAM_IDLE_SECONDS):
                    line = await anext(lines, None)
                if line is None:
                    return
                text = line.decode("utf-8", errors="replace").rstrip("\r")
                if text.startswith("event:"):
                    name = text[len("event:") :].strip()
                elif not text:
                    yield name
                    name = "message"


def error_for(response: HttpResponse, key: ConfigKey | None) -> ConfigStoreError:
    """The confstore error a local store would raise for the server's error answer."""
    try:
        body = response.json()
    except BackendError:
        body = None
    if not isinstance(body, dict) or not isinstance(body.get("type"), str):
        return response.error("the server answered")
    kind, message = body["type"], str(body.get("message", ""))
    field = body.get("field")
    if response.status in (401, 403):
        return AccessDeniedError(
            f"{response.method} {response.url}: {message}", status=response.status
        )
    if kind == "version_conflict" and "expected" in body:
        return VersionConflictError(int(body["expected"]), int(body["actual"]), key=key)
    if kind == "invalid_identifier":
        return InvalidIdentifierError(
            str(field or "identifier"), "(rejected by the server)", message
        )
    simple: dict[str, type[ConfigStoreError]] = {
        "import_format": ImportFormatError,
        "cursor_expired": CursorExpiredError,
        "backend_unavailable": BackendUnavailableError,
        "too_many_requests": BackendUnavailableError,
        "backend_timeout": BackendTimeoutError,
        # Our own earlier attempt is still running on the server: the outcome is still unknown.
        "idempotency_key_in_use": BackendTimeoutError,
        "unsupported": UnsupportedOperationError,
    }
    if kind in simple:
        return simple[kind](message)
    if kind == "import_conflict":
        return ImportConflictError(message, version=body.get("version"))
    if kind in (
        "invalid_config",
        "invalid_cursor",
        "payload_too_large",
        "invalid_idempotency_key",
        "idempotency_key_reused",
    ):
        return InvalidConfigError(message, field=str(field) if field else None)
    return response.error("the server answered")


def _is_not_found(response: HttpResponse) -> bool:
    if response.status != 404:
        return False
    try:
        body = response.json()
    except BackendError:
        return False
    return isinstance(body, dict) and body.get("type") == "not_found"


def _entry(data: Any) -> ConfigEntry:
    try:
        return ConfigEntry.from_dict(data)
    except ImportFormatError as exc:
        raise BackendError(f"the server sent a malformed config: {exc}") from exc


def _field(response: HttpResponse, name: str | None, kind: type) -> Any:
    body = response.json()
    value = body if name is None else body.get(name) if isinstance(body, dict) else None
    if not isinstance(value, kind):
        raise BackendError(
            f"{response.method} {response.url}: the answer has no {name or 'body'} of type "
            f"{kind.__name__}"
        )
    return value


def _tenant_path(tenant_id: str) -> str:
    return f"/v1/tenants/{quote(tenant_id, safe='')}"


def _config_path(key: ConfigKey) -> str:
    parts = (key.scope.value, key.service, key.config_key)
    return _tenant_path(key.tenant_id) + "/configs/" + "/".join(quote(p, safe="") for p in parts)

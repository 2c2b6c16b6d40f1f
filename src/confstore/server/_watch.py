"""The change feed over HTTP: ``/v1/changes`` (pages of JSON) and ``/v1/watch`` (Server-Sent Events).

One ``ChangeHub`` per server follows the store's feed and fans each change out to every watcher
whose token covers its tenant: the feed is read once however many watchers there are. The hub
polls right after this server's own writes and every ``feed_poll_interval`` (or when the store's
``wait_for_changes`` returns) for writes made around it.

Event ids are sealed store cursors. A change carries the cursor after its page when it is the
page's last change, else the cursor before the page, so resuming from any id given with
``Last-Event-ID`` misses nothing (a few changes may come again: delivery is at least once).
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from aiohttp import web

from .._errors import ConfigStoreError, CursorExpiredError
from .._models import ChangeBatch, ConfigChange
from .._store import ConfigStore
from .._validation import validate_identifier
from ._auth import AUTHENTICATOR, authorize, forbidden
from ._cursors import CursorSeal
from ._http import (
    STREAMING,
    json_response,
    query_int,
    query_param,
    security_headers,
    write_within,
)
from ._settings import SETTINGS, STORE
from ._tokens import AccessToken, Role

logger = logging.getLogger("confstore.server")

CHANGE_PAGE_MAX = 10_000
# Pages of other tenants' changes /v1/changes reads for a token before it answers "nothing yet".
_SKIPPED_PAGES_MAX = 20
# Changes remembered from a replay, so the live ones that overlap it are not sent twice.
_REPLAY_MEMORY = 10_000
_RETRY_MILLISECONDS = 2000
# How often the hub looks for watchers whose client went away. aiohttp does not cancel a handler
# when its client disconnects, and a stream with nothing to send would notice only at its next
# keepalive: watchers opened and dropped would be held that long.
_CONNECTION_CHECK_SECONDS = 1.0

Identity = tuple[str, str, str, str, str, int]


def _identity(change: ConfigChange) -> Identity:
    key = change.key
    return (
        key.tenant_id,
        key.scope.value,
        key.service,
        key.config_key,
        change.kind.value,
        change.version,
    )


def _sse_event(kind: str, data: str, event_id: str | None = None) -> bytes:
    lines = [] if event_id is None else [f"id: {event_id}"]
    lines += [f"event: {kind}", f"data: {data}", "", ""]
    return "\n".join(lines).encode()


@dataclass(frozen=True, slots=True)
class _Event:
    tenant_id: str
    identity: Identity
    payload: bytes


def _events(batch: ChangeBatch, cursor_before: str | None, seal: CursorSeal) -> list[_Event]:
    """The SSE events of one page of the feed, with ids safe to resume from (module docstring)."""
    if not batch.changes:
        return []
    after = seal.seal(batch.cursor)
    before = seal.seal(cursor_before) if cursor_before is not None else None
    last = len(batch.changes) - 1
    return [
        _Event(
            change.tenant_id,
            _identity(change),
            _sse_event(
                "change",
                json.dumps(change.to_dict(), separators=(",", ":")),
                after if index == last else before,
            ),
        )
        for index, change in enumerate(batch.changes)
    ]


_KEEPALIVE = _Event("", ("", "", "", "", "", 0), b": keepalive\n\n")


@dataclass(eq=False)
class Subscriber:
    """One watcher: the tenants it sees (None: all) and its queue; None in the queue ends it."""

    tenants: frozenset[str] | None
    limit: int
    queue: asyncio.Queue[_Event | None] = field(default_factory=asyncio.Queue)
    ended: bool = False
    # Whether its client has gone (the connection closed): then it ends.
    disconnected: Callable[[], bool] = lambda: False

    def wants(self, tenant_id: str) -> bool:
        return self.tenants is None or tenant_id in self.tenants

    def offer(self, event: _Event) -> None:
        if self.ended or (event is _KEEPALIVE and not self.queue.empty()):
            return
        if self.queue.qsize() >= self.limit:
            self.end()  # too slow: its stream closes, it reconnects and catches up from the store
            return
        self.queue.put_nowait(event)

    def end(self) -> None:
        if not self.ended:
            self.ended = True
            self.queue.put_nowait(None)


class ChangeHub:
    """Follows the store's change feed once, for every watcher of this server."""

    def __init__(
        self,
        store: ConfigStore,
        seal: Callable[[], CursorSeal],
        *,
        poll_interval: float,
        queue_limit: int,
        keepalive: float,
    ) -> None:
        self._store = store
        self._seal = seal
        self._poll_interval = poll_interval
        self._queue_limit = queue_limit
        self._keepalive = keepalive
        self._ticker: asyncio.Task[None] | None = None
        self._subscribers: set[Subscriber] = set()
        self._cursor: str | None = None
        self._poked = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._start_lock = asyncio.Lock()
        self._closed = False

    @property
    def watchers(self) -> int:
        return len(self._subscribers)

    def poke(self) -> None:
        """This server committed a write: read the feed now."""
        self._poked.set()

    async def subscribe(self, tenants: frozenset[str] | None) -> tuple[Subscriber, str]:
        """A new watcher and the store cursor from which the hub will report changes to it."""
        async with self._start_lock:
            if self._task is None:
                self._cursor = await self._store.current_cursor()
                loop = asyncio.get_running_loop()
                self._task = loop.create_task(self._follow(), name="confstore-server-feed")
                self._ticker = loop.create_task(self._tick(), name="confstore-server-keepalive")
        assert self._cursor is not None
        subscriber = Subscriber(tenants, self._queue_limit)
        if self._closed:
            subscriber.end()
        self._subscribers.add(subscriber)
        return subscriber, self._cursor

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.discard(subscriber)

    async def close(self) -> None:
        """End every watcher's stream and stop following the feed."""
        self._closed = True
        self._end_all()
        tasks = [task for task in (self._task, self._ticker) if task is not None]
        self._task = self._ticker = None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _end_all(self) -> None:
        for subscriber in list(self._subscribers):
            subscriber.end()

    async def _tick(self) -> None:
        """Every ``keepalive`` seconds, a comment for each idle watcher (one timer for all): it
        keeps proxies from closing the stream and lets a revoked token's stream end. Every
        second in between, the watchers whose client went away are ended."""
        loop = asyncio.get_running_loop()
        next_keepalive = loop.time() + self._keepalive
        while True:
            await asyncio.sleep(min(_CONNECTION_CHECK_SECONDS, next_keepalive - loop.time()))
            keepalive = loop.time() >= next_keepalive
            if keepalive:
                next_keepalive = loop.time() + self._keepalive
            for subscriber in list(self._subscribers):
                if subscriber.disconnected():
                    subscriber.end()
                elif keepalive:
                    subscriber.offer(_KEEPALIVE)

    async def _follow(self) -> None:
        failing = False
        while True:
            try:
                batch = await self._store.changes_since(self._cursor)
            except CursorExpiredError:
                logger.warning("confstore: the change feed cursor expired; watchers reconnect")
                self._cursor = await self._store.current_cursor()
                self._end_all()
                continue
            except ConfigStoreError as exc:
                if not failing:
                    logger.warning("confstore: cannot read the change feed (%s); retrying", exc)
                failing = True
                await self._wait()
                continue
            failing = False
            if batch.changes and self._subscribers:
                for event in _events(batch, self._cursor, self._seal()):
                    for subscriber in list(self._subscribers):
                        if subscriber.wants(event.tenant_id):
                            subscriber.offer(event)
            self._cursor = batch.cursor
            if not batch.has_more:
                await self._wait()

    async def _wait(self) -> None:
        """Until this server pokes, the store says a change may have come, or the interval ends."""
        if not self._poked.is_set():
            poked = asyncio.ensure_future(self._poked.wait())
            store_wait = asyncio.ensure_future(
                self._store.wait_for_changes(self._cursor, self._poll_interval)
            )
            try:
                await asyncio.wait({poked, store_wait}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in (poked, store_wait):
                    waiter.cancel()
                await asyncio.gather(poked, store_wait, return_exceptions=True)
        self._poked.clear()


def _visible_tenants(request: web.Request, identity: AccessToken) -> frozenset[str] | None:
    """The tenants a feed request sees: its ?tenant= (each checked), else all of its token's."""
    asked = request.query.getall("tenant", [])
    for tenant_id in asked:
        if not identity.covers(tenant_id):
            raise forbidden(f"token {identity.name!r} has no access to this tenant")
        validate_identifier("tenant_id", tenant_id)
    if asked:
        return frozenset(asked)
    return None if identity.all_tenants else frozenset(identity.tenants)


def _wanted(changes: Iterable[ConfigChange], tenants: frozenset[str] | None) -> list[ConfigChange]:
    return [change for change in changes if tenants is None or change.tenant_id in tenants]


async def changes(request: web.Request) -> web.Response:
    """A page of the change feed after ?cursor= (none: from the beginning), for this token."""
    identity = authorize(request, role=Role.READ)
    tenants = _visible_tenants(request, identity)
    seal = request.app[AUTHENTICATOR].cursor_seal
    given = query_param(request, "cursor")
    cursor = seal.open(given) if given else None
    limit = query_int(request, "limit", minimum=1, default=1000)
    assert limit is not None
    store = request.app[STORE]
    page = min(limit, CHANGE_PAGE_MAX)
    batch = await store.changes_since(cursor, limit=page)
    records = _wanted(batch.changes, tenants)
    for _ in range(_SKIPPED_PAGES_MAX):
        if records or not batch.has_more:
            break
        batch = await store.changes_since(batch.cursor, limit=page)
        records = _wanted(batch.changes, tenants)
    return json_response(
        {
            "changes": [change.to_dict() for change in records],
            "cursor": seal.seal(batch.cursor),
            "has_more": batch.has_more,
        }
    )


async def current_cursor(request: web.Request) -> web.Response:
    authorize(request, role=Role.READ)
    cursor = await request.app[STORE].current_cursor()
    return json_response({"cursor": request.app[AUTHENTICATOR].cursor_seal.seal(cursor)})


async def watch(request: web.Request) -> web.StreamResponse:
    """Server-Sent Events: one ``change`` event per committed write the token may see."""
    identity = authorize(request, role=Role.READ)
    tenants = _visible_tenants(request, identity)
    authenticator = request.app[AUTHENTICATOR]
    last_id = request.headers.get("Last-Event-ID") or query_param(request, "cursor")
    resume = authenticator.cursor_seal.open(last_id) if last_id else None
    hub = request.app[HUB]
    subscriber, present = await hub.subscribe(tenants)
    subscriber.disconnected = lambda: request.transport is None or request.transport.is_closing()
    stream = _EventStream(request, subscriber, identity)
    try:
        await stream.start(None if resume is not None else authenticator.cursor_seal.seal(present))
        replayed = await stream.replay(resume) if resume is not None else set()
        await stream.follow(replayed)
    except (ConnectionError, TimeoutError, ConfigStoreError):
        if not stream.response.prepared:
            raise
        # The watcher went away or reads too slowly, or the store failed while replaying:
        # end this stream; the watcher reconnects with Last-Event-ID and misses nothing.
        stream.response.force_close()
    finally:
        hub.unsubscribe(subscriber)
    return stream.response


class _EventStream:
    """Writes one watcher's events; every write must complete within the client timeout."""

    def __init__(self, request: web.Request, subscriber: Subscriber, identity: AccessToken):
        self.request = request
        self.subscriber = subscriber
        self.identity = identity
        self.settings = request.app[SETTINGS]
        self.response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "X-Accel-Buffering": "no",
            }
        )
        security_headers(self.response)

    async def start(self, ready_id: str | None) -> None:
        await self.response.prepare(self.request)
        self.request[STREAMING] = True
        await self._write(
            f"retry: {_RETRY_MILLISECONDS}\n".encode() + _sse_event("ready", "{}", ready_id)
        )

    async def replay(self, cursor: str) -> set[Identity]:
        """Send what the store committed after ``cursor``; return what was sent lately."""
        store = self.request.app[STORE]
        seal = self.request.app[AUTHENTICATOR].cursor_seal
        recent: collections.deque[Identity] = collections.deque(maxlen=_REPLAY_MEMORY)
        while True:
            batch = await store.changes_since(cursor)
            events = [
                event
                for event in _events(batch, cursor, seal)
                if self.subscriber.wants(event.tenant_id)
            ]
            if events:
                await self._write(b"".join(event.payload for event in events))
                recent.extend(event.identity for event in events)
            cursor = batch.cursor
            if not batch.has_more:
                return set(recent)

    async def follow(self, replayed: set[Identity]) -> None:
        queue = self.subscriber.queue
        authenticator = self.request.app[AUTHENTICATOR]
        while True:
            items = [await queue.get()]
            while not queue.empty():
                items.append(queue.get_nowait())
            if not authenticator.current(self.identity):
                return  # revoked: nothing more is sent
            if None in items:
                await self._send(items[: items.index(None)], replayed)
                return
            await self._send(items, replayed)

    async def _send(self, events: list[_Event | None], replayed: set[Identity]) -> None:
        chunks = []
        for event in events:
            if event is None:
                continue
            if event is _KEEPALIVE:
                if len(events) == 1:
                    chunks.append(event.payload)
                continue
            if replayed:
                if event.identity in replayed:
                    continue  # sent by the replay already
                replayed.clear()  # past the overlap: everything from here on is new
            chunks.append(event.payload)
        if chunks:
            await self._write(b"".join(chunks))

    async def _write(self, data: bytes) -> None:
        await write_within(self.request, self.response, data, self.settings.client_timeout)


HUB = web.AppKey("confstore_hub", ChangeHub)

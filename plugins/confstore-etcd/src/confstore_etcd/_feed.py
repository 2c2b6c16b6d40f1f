"""The change feed on etcd revisions.

A cursor is an etcd revision ``r`` (everything the store committed up to ``r`` was reported)
and a count ``skip`` of changes already reported from the next revision that has any (one
transaction may write more versions than a page holds). Every write transaction also puts the
store's marker key, so the marker's ``mod_revision`` is the revision of the store's last write,
and a watch of ``[marker, heads...]`` started at ``r + 1`` is sure to reach it.

Two ways to read the changes after a cursor:

- ``FeedWatch``: one watch per store handle, opened at the revision the handle first looked at
  (so etcd sends its events at once instead of replaying history, which it does in 100 ms
  batches), kept open in the background and buffered in memory. A cursor at or after the buffer's
  start is answered from it, once it has seen the marker's revision.
- ``replay``: a watch started at ``r + 1`` and read until the marker's revision, for a cursor
  older than the buffer (another handle's, or one from before a restart). When etcd has
  compacted that revision away the watch is cancelled and CursorExpiredError is raised.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from confstore import (
    BackendError,
    BackendTimeoutError,
    ChangeBatch,
    ChangeKind,
    ConfigChange,
    ConfigKey,
    CursorExpiredError,
    decode_cursor,
    encode_cursor,
)
from confstore.http import RetryPolicy

from ._client import CompactedError, EtcdClient
from ._keys import Head, KeySpace, b64, unb64

logger = logging.getLogger("confstore.etcd")

_CURSOR_PREFIX = "etcd:"
_RECONNECT = RetryPolicy(base_delay=0.05, max_delay=2.0)


@dataclass(frozen=True, slots=True)
class Cursor:
    revision: int
    skip: int = 0

    def encode(self) -> str:
        return encode_cursor(_CURSOR_PREFIX, [self.revision, self.skip])

    @classmethod
    def decode(cls, cursor: str | None) -> Cursor:
        if cursor is None:
            return cls(0)

        def parse(state: Any) -> Cursor:
            revision, skip = state
            if not all(type(part) is int and part >= 0 for part in (revision, skip)):
                raise ValueError("revision and skip must be non-negative integers")
            return cls(revision, skip)

        return decode_cursor(cursor, prefix=_CURSOR_PREFIX, backend="etcd", parse=parse)


Record = tuple[int, ConfigChange]


def records_of(keys: KeySpace, event: dict[str, Any]) -> list[Record]:
    """The changes one watch event reports (none for the marker)."""
    kv = event.get("kv", {})
    key = keys.key_of_head(unb64(kv.get("key")))
    if key is None:
        return []
    revision = int(kv.get("mod_revision", 0))
    if event.get("type") == "DELETE":
        # Heads are never deleted by a store (a purge leaves a marker head); someone removed
        # the key by hand, which is a purge whose last version is unknown.
        return [(revision, ConfigChange(key, ChangeKind.PURGE, 0))]
    head = Head.from_kv(kv)
    return [(revision, change) for change in changes_of(key, head)]


def changes_of(key: ConfigKey, head: Head) -> list[ConfigChange]:
    if head.version == 0:
        return [ConfigChange(key, ChangeKind.PURGE, head.purged)]
    return [
        ConfigChange(key, ChangeKind.DELETE if deleted else ChangeKind.SET, version)
        for version, deleted in head.written
    ]


def page(
    records: Iterable[Record],
    cursor: Cursor,
    limit: int,
    *,
    complete_to: int,
    end: int,
    more: bool = False,
) -> ChangeBatch:
    """The changes after ``cursor`` among ``records`` (in revision order, complete up to
    revision ``complete_to``), at most ``limit``; ``end`` is the cursor's revision once all
    were reported, and ``more`` says whether changes after ``end`` are known to be waiting."""
    taken: list[ConfigChange] = []
    current_revision = -1
    in_revision = 0
    for revision, change in records:
        if revision <= cursor.revision or revision > complete_to:
            continue
        if revision != current_revision:
            if taken and in_revision and len(taken) >= limit:
                return ChangeBatch(tuple(taken), Cursor(current_revision).encode(), has_more=True)
            first = current_revision == -1
            current_revision, in_revision = revision, 0
            skip = cursor.skip if first else 0
        in_revision += 1
        if in_revision <= skip:
            continue
        if len(taken) == limit:
            return ChangeBatch(
                tuple(taken), Cursor(revision - 1, in_revision - 1).encode(), has_more=True
            )
        taken.append(change)
    return ChangeBatch(tuple(taken), Cursor(max(end, cursor.revision)).encode(), has_more=more)


class FeedWatch:
    """The store's changes from revision ``start`` on, kept current by a background watch."""

    def __init__(self, client: EtcdClient, keys: KeySpace, *, capacity: int = 10_000) -> None:
        self._client = client
        self._keys = keys
        self._capacity = capacity
        self.start = 0
        self.seen = 0
        self._records: collections.deque[Record] = collections.deque()
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def running(self) -> bool:
        return (
            self._task is not None
            and not self._task.done()
            and self._loop is asyncio.get_running_loop()
        )

    async def start_at(self, revision: int) -> None:
        """Start following from ``revision`` (the present, as the caller just read it)."""
        self._loop = asyncio.get_running_loop()
        self._changed = asyncio.Condition()
        self._records.clear()
        self.start = self.seen = revision
        self._task = self._loop.create_task(self._follow(), name="confstore-etcd-feed")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done() and self._loop is asyncio.get_running_loop():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def covers(self, revision: int) -> bool:
        return self.running and revision >= self.start

    def records_after(self, revision: int) -> list[Record]:
        return [record for record in self._records if record[0] > revision]

    async def wait_seen(self, revision: int) -> bool:
        """Wait until every event up to ``revision`` arrived; False if the buffer restarted."""
        start = self.start
        async with self._changed:
            await self._changed.wait_for(lambda: self.seen >= revision or self.start != start)
        return self.start == start

    async def wait_beyond(self, revision: int) -> None:
        """Wait until an event after ``revision`` arrived (or the buffer restarted)."""
        start = self.start
        async with self._changed:
            await self._changed.wait_for(lambda: self.seen > revision or self.start != start)

    async def _follow(self) -> None:
        """Keep a watch open, reconnecting (to the next member) from the last revision seen."""
        failures = 0
        while True:
            try:
                if await self._watch():
                    failures = 0
            except CompactedError:
                with contextlib.suppress(BackendError):
                    await self._restart()
            except Exception as exc:
                if failures == 0:
                    logger.info("confstore-etcd: the change feed watch failed (%s); retrying", exc)
            failures += 1
            await asyncio.sleep(_RECONNECT.delay(failures))

    async def _watch(self) -> bool:
        """Follow one watch stream until it ends; whether it delivered anything."""
        start, end = self._keys.feed_range
        request = {"key": b64(start), "range_end": b64(end), "start_revision": str(self.seen + 1)}
        delivered = False
        async with self._client.watch(request) as messages:
            async for message in messages:
                if message.get("canceled"):
                    if "compact_revision" in message:
                        raise CompactedError(int(message["compact_revision"]))
                    self._client.forget_token()
                    raise BackendError(f"etcd cancelled the watch: {message.get('cancel_reason')}")
                delivered = True
                await self._take(message)
        return delivered

    async def _take(self, message: dict[str, Any]) -> None:
        events = message.get("events") or []
        if not events:
            return
        for event in events:
            self._records.extend(records_of(self._keys, event))
            self.seen = max(self.seen, int(event.get("kv", {}).get("mod_revision", 0)))
        while len(self._records) > self._capacity:
            dropped, _ = self._records.popleft()
            while self._records and self._records[0][0] == dropped:
                self._records.popleft()
            self.start = dropped
        async with self._changed:
            self._changed.notify_all()

    async def _restart(self) -> None:
        """The revisions after ``seen`` were compacted: start over from the present."""
        answer = await self._client.call("kv/range", {"key": b64(self._keys.marker)})
        logger.warning(
            "confstore-etcd: etcd compacted past the change feed; it restarts at revision %d",
            answer.revision,
        )
        self._records.clear()
        self.start = self.seen = answer.revision
        async with self._changed:
            self._changed.notify_all()


async def replay(
    client: EtcdClient, keys: KeySpace, after: int, until: int, enough: int, timeout: float
) -> tuple[list[Record], int]:
    """Records after revision ``after`` from etcd's history, reading until revision ``until``
    or until ``enough`` records (whole revisions); with the revision they are complete to.

    Raises CursorExpiredError when etcd compacted revision ``after + 1`` away.
    """
    start, end = keys.feed_range
    request = {"key": b64(start), "range_end": b64(end), "start_revision": str(after + 1)}
    records: list[Record] = []
    reached = after
    try:
        async with asyncio.timeout(timeout), client.watch(request) as messages:
            async for message in messages:
                if message.get("canceled"):
                    if "compact_revision" in message:
                        raise CursorExpiredError(
                            f"etcd compacted its history up to revision "
                            f"{message['compact_revision']}: the changes after revision {after} "
                            "are gone; start again from current_cursor()"
                        )
                    raise BackendError(f"etcd cancelled the watch: {message.get('cancel_reason')}")
                for event in message.get("events") or []:
                    records.extend(records_of(keys, event))
                    reached = max(reached, int(event.get("kv", {}).get("mod_revision", 0)))
                if reached >= until or len(records) >= enough:
                    return records, reached
    except TimeoutError as exc:
        raise BackendTimeoutError(
            f"etcd: the change feed after revision {after} did not arrive within {timeout}s"
        ) from exc
    raise BackendError("etcd: the watch ended before the change feed was read")

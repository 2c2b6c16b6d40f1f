"""DocumentConfigStore: the confstore contract on any ``DocumentStore``, written once.

Write (set, delete's tombstone, append import), on any number of hosts at once:

1. read the head: generation G, latest version N (no head: G = 0, N = 0);
2. create the version record (G, N+1) create-only: APPLIED means this writer owns N+1; CONFLICT
   means another writer does. Version records are the arbiter: one writer per version, any host;
3. compare-and-set the head from the one read to one showing N+1. The write is committed (seen
   by latest reads, listings and the change feed) when the head shows N+1.

Repair: a writer that lost step 2 waits a little (jittered), re-reads the head and, if it has not
moved, publishes the winner's record itself (the winner may have died between steps 2 and 3),
then starts again on top of it: a dead writer leaves no gap and no duplicate, and its write
becomes visible. A head that has moved past N+1 in G after a failed step 3 means our version was
committed (by us, or by a repairer). ``expected_version`` is checked against the head at step 1
(after publishing a dead writer's next version) and enforced by step 2's create-only.

Unknown outcomes (a timeout, a dropped connection, a 5xx on a write) are resolved by reading back,
never by a blind retry: a record's ``write_id`` says whose it is, the head's version whether it
moved. A CONFLICT that follows an unknown outcome of the same write is read back too (it may be
our own first attempt). A write whose outcome stays unknown ``retry.attempts`` times in a row
raises BackendUnavailableError; back-off between tries follows ``retry`` (capped, jittered).

Purge: mark the head ``purging`` (compare-and-set; the key reads as absent from then on), create
the purge marker (G), delete every version record of generations up to G, then replace the head
by an empty one of generation G+1. Whoever meets a ``purging`` head (a writer, another purge)
finishes the purge first, so a purger that dies half-way leaves nothing behind for long. A writer
whose step 3 loses to a purge deletes its orphaned record (generations up to G) and starts over.
Readers trust only the head's generation, up to the head's version.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from typing import Any, ClassVar

from .._errors import (
    BackendError,
    BackendUnavailableError,
    ImportConflictError,
    InvalidConfigError,
    VersionConflictError,
)
from .._export import ImportMode, plan_restore
from .._models import (
    ChangeBatch,
    ConfigEntry,
    ConfigKey,
    ConfigScope,
    from_epoch_micros,
)
from .._store import ConfigStore, StoreCapabilities
from .._validation import DEFAULT_MAX_VALUE_BYTES
from ..http import RetryPolicy
from ._feed import DEFAULT_CHANGE_WINDOW, ChangeFeed, now_micros
from ._polling import AdaptivePoll, PollBounds
from ._primitives import (
    DocumentStore,
    Head,
    HeadQuery,
    Record,
    RecordKind,
    WriteOutcome,
    gather_bounded,
)

_CONTENTION_LIMIT = 10_000
# Back-off after losing a version to another writer (contention, not failure: see ``retry``).
_CONTENTION_BACKOFF = RetryPolicy(base_delay=0.002, max_delay=0.1)
_READ_CHUNK = 256
_PARALLEL_KEYS = 8


class DocumentConfigStore(ConfigStore):
    """The whole ConfigStore contract on the primitives of ``documents``.

    ``change_window`` (seconds) is the change feed's re-scan window (see confstore.docstore);
    ``retry`` paces the read-back of unknown outcomes; ``poll`` bounds the pause between two
    checks of the feed while a follower waits (see ``_polling``: fast after a change, slower when
    quiet). Subclasses set ``backend_name`` and build their DocumentStore; everything else is here.
    """

    backend_name: ClassVar[str] = "document store"
    # A purged key's head starts a new generation at version 0, so retention keeps an old
    # deleted key's tombstone (and removes what came before) rather than renumber it.
    _retires_deleted_keys: ClassVar[bool] = False

    def __init__(
        self,
        documents: DocumentStore,
        *,
        change_window: float = DEFAULT_CHANGE_WINDOW,
        retry: RetryPolicy | None = None,
        max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
        poll: PollBounds | None = None,
    ) -> None:
        super().__init__(max_value_bytes=max_value_bytes)
        if isinstance(change_window, bool) or not change_window > 0:
            raise InvalidConfigError(
                f"change_window must be a positive number of seconds, got {change_window!r}",
                field="change_window",
            )
        self.documents = documents
        self.change_window = float(change_window)
        self.retry = retry or RetryPolicy()
        self._feed = ChangeFeed(documents, self.change_window, self.backend_name)
        self._poll = AdaptivePoll(poll or PollBounds())

    @property
    def poll(self) -> PollBounds:
        """The bounds of the pause between two checks of the feed while a follower waits."""
        return self._poll.bounds

    @property
    def capabilities(self) -> StoreCapabilities:
        return self.documents.capabilities

    async def initialize(self) -> None:
        await self.documents.initialize()

    async def close(self) -> None:
        await self.documents.close()

    async def health_check(self) -> bool:
        try:
            return await self.documents.health_check()
        except Exception:  # the contract: never raises
            return False

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
        entry = await self._append(
            key,
            value,
            deleted=False,
            updated_by=updated_by,
            comment=comment,
            expected_version=expected_version,
        )
        assert entry is not None
        self._poll.changed()  # where one write happens, more tend to follow
        return entry

    async def _delete_config(
        self, key: ConfigKey, *, purge: bool, updated_by: str | None, comment: str | None
    ) -> bool:
        self._poll.changed()
        if purge:
            return await self._purge(key)
        tombstone = await self._append(
            key, {}, deleted=True, updated_by=updated_by, comment=comment, require_live=True
        )
        return tombstone is not None

    async def _append(
        self,
        key: ConfigKey,
        value: dict[str, Any],
        *,
        deleted: bool,
        updated_by: str | None,
        comment: str | None,
        expected_version: int | None = None,
        require_live: bool = False,
    ) -> ConfigEntry | None:
        """Write latest + 1 (steps 1-3). None when ``require_live`` and the key is not live."""
        write_id = new_write_id()
        lost = 0
        head = await self._head(key)
        for _ in range(_CONTENTION_LIMIT):
            if head.purging:
                head = await self._finish_purge(head)
                continue
            mismatch = expected_version is not None and head.version != expected_version
            if mismatch or (require_live and not head.live):
                repaired = await self._publish_next(head)
                if repaired is not None:
                    head = repaired
                    continue
                if require_live:
                    return None
                assert expected_version is not None
                raise VersionConflictError(expected_version, head.version, key=key)
            record = _next_record(head, value, deleted, updated_by, comment, write_id)
            if not await self._create_version(record):
                lost += 1
                await asyncio.sleep(_CONTENTION_BACKOFF.delay(lost))
                head = await self._catch_up(head)
                continue
            if await self._publish(head, record):
                assert record.entry is not None
                return record.entry
            head = await self._withdraw(record)
        raise BackendUnavailableError(f"could not write {key}: too much contention")

    async def _create_version(self, record: Record) -> bool:
        """Create our version record: True if it is stored, False if another writer's is."""
        outcome = await self.documents.create_record(record)
        if outcome is WriteOutcome.APPLIED:
            return True
        if outcome is WriteOutcome.CONFLICT:
            return False  # a first, definite conflict: another writer's record
        stored = await self._settle(record, outcome)
        return stored.write_id == record.write_id

    async def _settle(self, record: Record, outcome: WriteOutcome) -> Record:
        """The record stored under ``record``'s identity after a create that was not APPLIED
        (UNKNOWN: read back, and send again while nothing is stored; CONFLICT: read it)."""
        unknown = 0
        while True:
            (stored,) = await self.documents.get_versions(
                record.key, record.generation, [record.version]
            )
            if stored is not None:
                return stored
            if outcome is WriteOutcome.CONFLICT:
                raise self._broken_create(record)
            unknown = await self._after_unknown(unknown, f"create version {record.version}")
            outcome = await self.documents.create_record(record)
            if outcome is WriteOutcome.APPLIED:
                return record

    async def _catch_up(self, head: Head) -> Head:
        """The head to write on after losing version N+1: the current one once it moved, else
        the head after publishing the winner's record (its writer may have died)."""
        current = await self._head(head.key)
        if not current.same_state(head):
            return current
        (winner,) = await self.documents.get_versions(head.key, head.generation, [head.version + 1])
        if winner is None:
            raise self._broken_create(_placeholder(head))
        await self._publish(head, winner)
        return await self._head(head.key)

    async def _publish_next(self, head: Head) -> Head | None:
        """Publish version N+1 if a writer stored it but died before step 3; the head then."""
        (stored,) = await self.documents.get_versions(head.key, head.generation, [head.version + 1])
        if stored is None:
            return None
        await self._publish(head, stored)
        return await self._head(head.key)

    async def _publish(self, seen: Head, record: Record) -> bool:
        """Make the head show ``record`` (compare-and-set from ``seen``). True once the head shows
        that version or a later one of its generation; False if a purge took the generation."""
        target = Head.showing(record)
        unknown = 0
        for _ in range(_CONTENTION_LIMIT):
            outcome = await self.documents.put_head(target, seen if seen.exists else None)
            if outcome is WriteOutcome.APPLIED:
                return True
            current = await self._head(record.key)
            if current.generation == record.generation and current.version >= record.version:
                return True
            if current.generation != record.generation or current.purging:
                return False
            if current.same_state(seen):
                unknown = await self._after_unknown(unknown, f"publish version {record.version}")
            seen = current
        raise BackendUnavailableError(f"could not publish {record.key}: too much contention")

    async def _withdraw(self, record: Record) -> Head:
        """After a purge took our record's generation: delete the orphan, return the head now."""
        current = await self._head(record.key)
        if current.purging:
            return await self._finish_purge(current)
        await self.documents.delete_generations(record.key, record.generation)
        return current

    async def _purge(self, key: ConfigKey) -> bool:
        head = await self._head(key)
        for _ in range(_CONTENTION_LIMIT):
            if head.purging:
                await self._finish_purge(head)
                return False  # another purge marked it first; it reports True
            if head.version == 0:
                repaired = await self._publish_next(head)
                if repaired is None:
                    return False
                head = repaired
                continue
            marked = replace(
                head,
                purging=True,
                write_id=new_write_id(),
                written_micros=max(now_micros(), head.written_micros + 1),
            )
            current = await self._swap_head(marked, head, f"purge {key}")
            if current.write_id == marked.write_id:
                await self._finish_purge(current)
                return True
            head = current
        raise BackendUnavailableError(f"could not purge {key}: too much contention")

    async def _finish_purge(self, marked: Head) -> Head:
        """Complete the purge that marked this head: marker, version records, new generation.

        Idempotent, so anyone meeting the mark may run it, even late: it deletes only generations
        up to the marked one, and replaces the head only if it is still the marked one.
        """
        key = marked.key
        marker = Record(
            RecordKind.PURGE,
            key,
            marked.generation,
            marked.version,
            deleted=True,
            written_micros=marked.written_micros,
            write_id=marked.write_id,
        )
        await self._create_marker(marker)
        await self.documents.delete_generations(key, marked.generation)
        cleared = Head(
            key,
            generation=marked.generation + 1,
            written_micros=marked.written_micros,
            write_id=new_write_id(),
        )
        return await self._swap_head(cleared, marked, f"finish the purge of {key}")

    async def _swap_head(self, head: Head, expected: Head, what: str) -> Head:
        """Compare-and-set ``expected`` to ``head``, sending it again while the outcome was
        unknown and the head did not move; returns the head as it is then (read back)."""
        unknown = 0
        while True:
            outcome = await self.documents.put_head(head, expected)
            current = await self._head(head.key)
            if outcome is WriteOutcome.APPLIED or not current.same_state(expected):
                return current
            unknown = await self._after_unknown(unknown, what)

    async def _create_marker(self, marker: Record) -> None:
        """Create a purge marker; one that stands already (ours or another finisher's) is fine."""
        unknown = 0
        while await self.documents.create_record(marker) is WriteOutcome.UNKNOWN:
            unknown = await self._after_unknown(unknown, f"record the purge of {marker.key}")

    async def _after_unknown(self, unknown: int, what: str) -> int:
        """Back off after a write whose outcome was unknown and turned out not applied."""
        unknown += 1
        if unknown >= self.retry.attempts:
            raise BackendUnavailableError(
                f"{self.backend_name}: could not {what}: its outcome stayed unknown "
                f"{unknown} times (5xx answers, timeouts or dropped connections)"
            )
        await asyncio.sleep(self.retry.delay(unknown))
        return unknown

    def _broken_create(self, record: Record) -> BackendError:
        return BackendError(
            f"{self.backend_name}: creating version {record.version} of {record.key} was refused "
            "as a conflict, yet no such record exists: the store does not keep create-if-absent. "
            f"{self.documents.requirement}".rstrip()
        )

    async def _head(self, key: ConfigKey) -> Head:
        return await self.documents.get_head(key) or Head.absent(key)

    async def _remove_versions(
        self, key: ConfigKey, versions: list[int], *, purge: bool, latest: int
    ) -> bool:
        """Delete old version records of the head's generation (readers already skip gaps).
        The head's own version is never among them: it is the latest."""
        head = await self._head(key)
        if head.purging or head.version != latest:
            return False
        doomed = [version for version in versions if version < head.version]
        for chunk in _chunks(range(len(doomed)), _READ_CHUNK):
            await self.documents.delete_versions(
                key, head.generation, [doomed[index] for index in chunk]
            )
        return True

    async def _get_config(self, key: ConfigKey, version: int | None) -> ConfigEntry | None:
        head = await self._head(key)
        if version is None:
            return _entry_of(head) if head.live else None
        if version > head.committed:
            return None
        if version == head.version:
            return _entry_of(head)
        (record,) = await self.documents.get_versions(key, head.generation, [version])
        return None if record is None else _entry_of(record)

    async def _get_config_history(self, key: ConfigKey, limit: int) -> list[ConfigEntry]:
        head = await self._head(key)
        if head.committed == 0:
            return []
        wanted = list(range(head.version - 1, max(0, head.version - limit), -1))
        older = await self.documents.get_versions(key, head.generation, wanted) if wanted else []
        entries = [_entry_of(head), *(_entry_of(record) for record in older if record)]
        if len(entries) < min(limit, head.version):
            # Gaps (a restore of a partial history): fall back to scanning the generation.
            records = [
                record
                async for record in self.documents.scan_versions(key, head.generation)
                if record.version <= head.version
            ]
            records.sort(key=lambda record: record.version, reverse=True)
            entries = [_entry_of(record) for record in records]
        return entries[:limit]

    async def _list_configs(
        self, tenant_id: str, scope: ConfigScope | None, service: str | None
    ) -> list[ConfigEntry]:
        query = HeadQuery(tenant_id, scope, service)
        heads = [
            head
            async for head in self.documents.scan_heads(query)
            if head.live and query.matches(head.key)
        ]
        return [_entry_of(head) for head in sorted(heads, key=lambda head: head.key)]

    async def _list_tenants(self, include_deleted: bool) -> list[str]:
        tenants = {
            head.key.tenant_id
            async for head in self.documents.scan_heads(HeadQuery(values=False))
            if head.live or (include_deleted and head.committed > 0)
        }
        return sorted(tenants)

    async def _iter_configs(
        self, tenant_id: str, include_history: bool
    ) -> AsyncIterator[ConfigEntry]:
        if not include_history:
            for entry in await self._list_configs(tenant_id, None, None):
                yield entry
            return
        heads = [
            head
            async for head in self.documents.scan_heads(HeadQuery(tenant_id, values=False))
            if head.committed > 0 and head.key.tenant_id == tenant_id
        ]
        for head in sorted(heads, key=lambda head: head.key):
            for chunk in _chunks(range(1, head.version + 1), _READ_CHUNK):
                found = await self.documents.get_versions(head.key, head.generation, chunk)
                for record in found:
                    if record is not None:
                        yield _entry_of(record)

    async def get_stats(self) -> dict[str, Any]:
        """Counts from a scan of the heads and of the records (summaries, no values)."""
        heads = {
            head.key: head async for head in self.documents.scan_heads(HeadQuery(values=False))
        }
        stored = 0
        async for record in self.documents.scan_feed(None):
            head = heads.get(record.key)
            stored += (
                record.kind is RecordKind.VERSION
                and head is not None
                and head.generation == record.generation
                and record.version <= head.committed
            )
        live = [key for key, head in heads.items() if head.live]
        per_scope = {scope.value: 0 for scope in ConfigScope}
        for key in live:
            per_scope[key.scope.value] += 1
        return {
            "backend": self.backend_name,
            "total_configs": len(live),
            "total_versions": stored,
            "total_tenants": len({key.tenant_id for key in live}),
            "configs_per_scope": per_scope,
        }

    async def _import_entries(
        self, tenant_id: str, entries: list[ConfigEntry], mode: ImportMode
    ) -> int:
        groups = [list(group) for _, group in itertools.groupby(entries, key=lambda e: e.key)]
        if mode == "append":
            written = await gather_bounded(
                (self._append_all(group) for group in groups), _PARALLEL_KEYS
            )
            return sum(written)
        plans = await gather_bounded(
            (self._plan_restore(group) for group in groups), _PARALLEL_KEYS
        )
        written = await gather_bounded(
            (self._restore(head, planned) for head, planned in plans if planned), _PARALLEL_KEYS
        )
        return sum(written)

    async def _append_all(self, group: list[ConfigEntry]) -> int:
        for entry in group:
            await self._append(
                entry.key,
                entry.config_value,
                deleted=entry.deleted,
                updated_by=entry.updated_by,
                comment=entry.comment,
            )
        return len(group)

    async def _plan_restore(self, group: list[ConfigEntry]) -> tuple[Head, list[ConfigEntry]]:
        """What a restore must write for one key (conflicts raise before anything is written)."""
        head = await self._head(group[0].key)
        if head.purging:
            head = await self._finish_purge(head)
        found = await self.documents.get_versions(
            head.key, head.generation, [entry.version for entry in group]
        )
        stored = {record.version: _entry_of(record) for record in found if record is not None}
        return head, plan_restore(group, stored)

    async def _restore(self, head: Head, planned: list[ConfigEntry]) -> int:
        """Create the planned versions (create-only, so a re-run never duplicates), then move
        the head to the newest if it is beyond the head. Returns how many this call stored."""
        start = max(now_micros(), head.written_micros + 1)
        records = [
            Record(
                RecordKind.VERSION,
                head.key,
                head.generation,
                entry.version,
                entry.deleted,
                start + offset,
                new_write_id(),
                entry,
            )
            for offset, entry in enumerate(planned)
        ]
        outcomes = await self.documents.create_records(records)
        unsettled = [
            (record, outcome)
            for record, outcome in zip(records, outcomes, strict=True)
            if outcome is not WriteOutcome.APPLIED
        ]
        written = len(records) - len(unsettled)
        if unsettled:
            versions = [record.version for record, _ in unsettled]
            found = await self.documents.get_versions(head.key, head.generation, versions)
            for (record, outcome), stored in zip(unsettled, found, strict=True):
                settled = stored or await self._settle(record, outcome)
                written += _restored(record, settled)
        newest = max(records, key=lambda record: record.version)
        if newest.version > head.version and not await self._publish(head, newest):
            raise BackendError(f"{head.key} was purged while it was being imported; import again")
        return written

    async def current_cursor(self) -> str:
        return await self._feed.current_cursor()

    async def _changes_since(self, cursor: str | None, limit: int) -> ChangeBatch:
        batch = await self._feed.changes_since(cursor, limit)
        if batch.changes:
            self._poll.changed()
        else:
            self._poll.quiet()
        return batch

    async def wait_for_changes(self, cursor: str | None, timeout: float) -> None:
        """Check the feed after each pause of the adaptive poll (``poll_min`` after a change,
        doubling while quiet up to ``poll_max``) and return when it reports a change after
        ``cursor``, or at ``timeout`` (a check still running then is abandoned: the follower
        polls next anyway)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while True:
                    await asyncio.sleep(self._poll.pause)
                    if (await self.changes_since(cursor, limit=1)).changes:
                        return


def new_write_id() -> str:
    return uuid.uuid4().hex


def _next_record(
    head: Head,
    value: dict[str, Any],
    deleted: bool,
    updated_by: str | None,
    comment: str | None,
    write_id: str,
) -> Record:
    """The version record of a write on top of ``head``; its clock never goes back per key."""
    micros = max(now_micros(), head.written_micros + 1)
    now = from_epoch_micros(micros)
    created_at = head.entry.created_at if head.version > 0 and head.entry is not None else now
    key = head.key
    entry = ConfigEntry(
        tenant_id=key.tenant_id,
        scope=key.scope,
        service=key.service,
        config_key=key.config_key,
        config_value=value,
        version=head.version + 1,
        created_at=created_at,
        updated_at=now,
        updated_by=updated_by,
        comment=comment,
        deleted=deleted,
    )
    return Record(
        RecordKind.VERSION, key, head.generation, entry.version, deleted, micros, write_id, entry
    )


def _chunks(versions: range, size: int) -> Iterator[list[int]]:
    for start in range(0, len(versions), size):
        yield list(versions[start : start + size])


def _restored(record: Record, stored: Record) -> bool:
    """Whether ``stored`` is the restored ``record`` itself (True) or the same version written
    before (False); ImportConflictError if it holds another value."""
    if stored.write_id == record.write_id:
        return True
    existing, restored = _entry_of(stored), _entry_of(record)
    if (existing.config_value, existing.deleted) != (restored.config_value, restored.deleted):
        raise ImportConflictError(
            f"version {record.version} of {record.key} was written with another value meanwhile",
            key=record.key,
            version=record.version,
        )
    return False


def _placeholder(head: Head) -> Record:
    """Names version N+1 of ``head`` in an error message."""
    return Record(RecordKind.VERSION, head.key, head.generation, head.version + 1, False, 0, "")


def _entry_of(document: Head | Record) -> ConfigEntry:
    if document.entry is None:
        raise BackendError(f"malformed document of {document.key}: it holds no entry")
    return document.entry

"""The document protocol's own rules, on the reference MemoryDocumentStore: repair of writers and
purgers that died between their steps, unknown outcomes, a store that breaks create-if-absent,
and the change feed's hold-back and window."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import replace

import pytest

from confstore import (
    BackendError,
    BackendUnavailableError,
    ChangeKind,
    ConfigEntry,
    ConfigKey,
    ConfigScope,
    epoch_micros,
    utc_now,
)
from confstore.docstore import (
    DEFAULT_CHANGE_WINDOW,
    DocumentConfigStore,
    Head,
    MemoryDocumentStore,
    Record,
    RecordKind,
    WriteOutcome,
)
from confstore.docstore import _feed as feed
from confstore.http import RetryPolicy

KEY = ConfigKey("acme", ConfigScope.SYSTEM, "svc", "db.url")
PARTS = ("acme", "system", "svc", "db.url")
FAST = RetryPolicy(attempts=8, base_delay=0.0005, max_delay=0.005)

Opener = Callable[..., DocumentConfigStore]


class FlakyDocuments(MemoryDocumentStore):
    """Conditional writes that, at the given rate, are not applied or are applied without an
    answer (UNKNOWN either way), as a timeout or a dropped connection would leave them."""

    def __init__(self, name: str, rate: float, seed: int) -> None:
        super().__init__(name)
        self.rate = rate
        self.random = random.Random(seed)
        self.faults = 0

    def _fault(self) -> str | None:
        if self.random.random() >= self.rate:
            return None
        self.faults += 1
        return self.random.choice(("before", "after"))

    async def create_record(self, record: Record) -> WriteOutcome:
        fault = self._fault()
        if fault == "before":
            return WriteOutcome.UNKNOWN
        outcome = await super().create_record(record)
        return WriteOutcome.UNKNOWN if fault == "after" else outcome

    async def put_head(self, head: Head, expected: Head | None) -> WriteOutcome:
        fault = self._fault()
        if fault == "before":
            return WriteOutcome.UNKNOWN
        outcome = await super().put_head(head, expected)
        return WriteOutcome.UNKNOWN if fault == "after" else outcome


class NoCreateIfAbsent(MemoryDocumentStore):
    """A store that refuses every create as a conflict without storing anything (as a Vespa
    older than 8.178 does with create-only puts)."""

    requirement = "This store needs create-if-absent."

    async def create_record(self, record: Record) -> WriteOutcome:
        return WriteOutcome.CONFLICT


@pytest.fixture
async def open_store() -> AsyncIterator[Opener]:
    """Open handles (each another "host") on one fresh storage area; closes them all."""
    area = f"protocol-{uuid.uuid4().hex}"
    opened: list[DocumentConfigStore] = []

    def open_one(documents: MemoryDocumentStore | None = None) -> DocumentConfigStore:
        store = DocumentConfigStore(documents or MemoryDocumentStore(area), retry=FAST)
        opened.append(store)
        return store

    open_one.area = area  # type: ignore[attr-defined]
    yield open_one
    for store in opened:
        await store.close()


def dead_record(head: Head, value: dict[str, object]) -> Record:
    """Version head+1 as a writer that died before moving the head left it."""
    now = utc_now()
    entry = ConfigEntry(
        KEY.tenant_id, KEY.scope, KEY.service, KEY.config_key, value, head.version + 1, now, now
    )
    micros = max(epoch_micros(now), head.written_micros + 1)
    return Record(
        RecordKind.VERSION, KEY, head.generation, head.version + 1, False, micros, "dead", entry
    )


async def test_a_version_a_writer_left_unpublished_is_published_by_the_next_writer(
    open_store: Opener,
) -> None:
    store = open_store()
    await store.set_config(*PARTS, {"n": 1})
    head = await store.documents.get_head(KEY)
    assert head is not None
    await store.documents.create_record(dead_record(head, {"n": "dead"}))
    assert (await store.get_config(*PARTS)).version == 1  # type: ignore[union-attr]
    assert (await store.set_config(*PARTS, {"n": 3})).version == 3
    history = await store.get_config_history(*PARTS)
    assert [(e.version, e.config_value) for e in history] == [
        (3, {"n": 3}),
        (2, {"n": "dead"}),
        (1, {"n": 1}),
    ]


async def test_a_delete_sees_a_live_version_a_writer_left_on_a_tombstone(
    open_store: Opener,
) -> None:
    store = open_store()
    await store.set_config(*PARTS, {"n": 1})
    await store.delete_config(*PARTS)
    head = await store.documents.get_head(KEY)
    assert head is not None
    await store.documents.create_record(dead_record(head, {"n": "revived"}))
    assert await store.delete_config(*PARTS) is True
    assert [e.version for e in await store.get_config_history(*PARTS)] == [4, 3, 2, 1]


async def test_a_purge_that_died_after_marking_the_head_is_finished_by_the_next_writer(
    open_store: Opener,
) -> None:
    store = open_store()
    for number in range(3):
        await store.set_config(*PARTS, {"n": number})
    head = await store.documents.get_head(KEY)
    assert head is not None
    marked = replace(head, purging=True, write_id="dead-purger")
    assert await store.documents.put_head(marked, head) is WriteOutcome.APPLIED
    assert await store.get_config(*PARTS) is None
    assert await store.get_config_history(*PARTS) == []
    cursor = await store.current_cursor()
    assert (await store.set_config(*PARTS, {"n": "again"})).version == 1
    assert [e.version for e in await store.get_config_history(*PARTS)] == [1]
    assert (await store.get_stats())["total_versions"] == 1
    changes = (await store.changes_since(cursor)).changes
    assert [(c.kind, c.version) for c in changes] == [(ChangeKind.PURGE, 3), (ChangeKind.SET, 1)]


async def test_a_late_purge_finisher_leaves_the_next_generation_alone(open_store: Opener) -> None:
    store = open_store()
    await store.set_config(*PARTS, {"n": "first life"})
    head = await store.documents.get_head(KEY)
    assert head is not None
    assert await store.documents.put_head(replace(head, purging=True), head) is (
        WriteOutcome.APPLIED
    )
    marked = await store.documents.get_head(KEY)
    assert marked is not None
    await store.set_config(*PARTS, {"n": "second life"})
    await store._finish_purge(marked)
    assert (await store.get_config(*PARTS)).config_value == {"n": "second life"}  # type: ignore[union-attr]
    assert [e.version for e in await store.get_config_history(*PARTS)] == [1]


async def test_a_writer_that_lost_its_head_to_a_purge_removes_its_orphan(
    open_store: Opener,
) -> None:
    writer, purger = open_store(), open_store()
    await writer.set_config(*PARTS, {"n": 1})
    stale = await writer.documents.get_head(KEY)
    assert stale is not None
    await purger.delete_config(*PARTS, purge=True)
    orphan = dead_record(stale, {"n": "orphan"})
    assert await writer.documents.create_record(orphan) is WriteOutcome.APPLIED
    assert await writer._publish(stale, orphan) is False
    await writer._withdraw(orphan)
    assert await writer.documents.get_versions(KEY, 0, [1, 2]) == [None, None]
    assert (await writer.set_config(*PARTS, {"n": "new life"})).version == 1


async def test_unknown_outcomes_never_duplicate_or_lose_an_acknowledged_write(
    open_store: Opener,
) -> None:
    area = open_store.area  # type: ignore[attr-defined]
    hosts = [open_store(FlakyDocuments(area, rate=0.2, seed=seed)) for seed in (1, 2)]
    acknowledged: dict[int, dict[str, int]] = {}
    failed = 0

    async def writer(number: int) -> None:
        nonlocal failed
        try:
            entry = await hosts[number % 2].set_config(*PARTS, {"writer": number})
        except BackendUnavailableError:
            failed += 1
            return
        assert entry.version not in acknowledged
        acknowledged[entry.version] = entry.config_value

    await asyncio.gather(*(writer(number) for number in range(40)))
    for host in hosts:
        host.documents.rate = 0.0  # type: ignore[attr-defined]
    history = await hosts[0].get_config_history(*PARTS, limit=100)
    stored = {entry.version: entry.config_value for entry in history}
    assert sorted(stored) == list(range(1, len(stored) + 1))
    assert all(stored[version] == value for version, value in acknowledged.items())
    writers = [value["writer"] for value in stored.values()]
    assert len(writers) == len(set(writers))
    assert len(acknowledged) <= len(stored) <= len(acknowledged) + failed
    assert sum(host.documents.faults for host in hosts) >= 10  # type: ignore[attr-defined]


async def test_a_store_without_create_if_absent_fails_at_once_instead_of_looping(
    open_store: Opener,
) -> None:
    store = open_store(NoCreateIfAbsent(open_store.area))  # type: ignore[attr-defined]
    async with asyncio.timeout(5):
        with pytest.raises(BackendError, match="needs create-if-absent"):
            await store.set_config(*PARTS, {"n": 1})


async def test_the_feed_holds_back_a_version_until_its_head_shows_it(open_store: Opener) -> None:
    store = open_store()
    await store.set_config(*PARTS, {"n": 1})
    cursor = await store.current_cursor()
    head = await store.documents.get_head(KEY)
    assert head is not None
    await store.documents.create_record(dead_record(head, {"n": 2}))
    held = await store.changes_since(cursor)
    assert held.changes == ()
    await store.set_config(*PARTS, {"n": 3})
    batch = await store.changes_since(held.cursor)
    assert [(c.kind, c.version) for c in batch.changes] == [
        (ChangeKind.SET, 2),
        (ChangeKind.SET, 3),
    ]
    assert (await store.changes_since(batch.cursor)).changes == ()


async def test_the_feed_reports_a_write_that_became_visible_late_within_the_window_once(
    open_store: Opener,
) -> None:
    store, slow_host = open_store(), open_store()
    await store.set_config("acme", "system", "svc", "other", {"n": 1})
    cursor = await store.current_cursor()
    # A write stamped 5 s ago (its request was slow) becomes visible only now.
    late = dead_record(Head.absent(KEY), {"n": "slow"})
    late = replace(late, written_micros=late.written_micros - 5_000_000)
    assert await slow_host.documents.create_record(late) is WriteOutcome.APPLIED
    assert await slow_host.documents.put_head(Head.showing(late), None) is WriteOutcome.APPLIED
    batch = await store.changes_since(cursor)
    assert [(c.key, c.version) for c in batch.changes] == [(KEY, 1)]
    assert (await store.changes_since(batch.cursor)).changes == ()


async def test_a_version_held_back_longer_than_the_window_is_reported_anyway(
    open_store: Opener, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_store()
    cursor = await store.current_cursor()
    await store.documents.create_record(dead_record(Head.absent(KEY), {"n": "never published"}))
    held = await store.changes_since(cursor)
    assert held.changes == ()
    later = feed.now_micros() + int((DEFAULT_CHANGE_WINDOW + 1) * 1_000_000)
    monkeypatch.setattr(feed, "now_micros", lambda: later)
    batch = await store.changes_since(held.cursor)
    assert [(c.kind, c.version) for c in batch.changes] == [(ChangeKind.SET, 1)]


def test_the_default_change_window_is_thirty_seconds() -> None:
    store = DocumentConfigStore(MemoryDocumentStore())
    assert store.change_window == DEFAULT_CHANGE_WINDOW == 30.0

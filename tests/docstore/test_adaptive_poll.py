"""DocumentConfigStore.wait_for_changes polls adaptively: a change by another host wakes the
waiter long before its timeout, checks come poll_min apart after a change and back off (doubling)
to poll_max while quiet; the bounds are checked and read from store URLs."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from confstore import InvalidConfigError, StoreOptions, open_store
from confstore.docstore import DocumentConfigStore, MemoryDocumentStore, PollBounds

NEVER = 600.0
WAIT = 10.0
FAST = PollBounds(min_interval=0.01, max_interval=0.08)


class CountingDocuments(MemoryDocumentStore):
    """Counts the feed scans: each one is a request on a real document store."""

    def __init__(self, area: str) -> None:
        super().__init__(area)
        self.scans = 0

    def scan_feed(self, since_micros: int | None) -> Any:
        self.scans += 1
        return super().scan_feed(since_micros)


@pytest.fixture
def area() -> str:
    return f"adaptive-{uuid.uuid4().hex}"


@pytest.fixture
async def follower(area: str) -> AsyncIterator[DocumentConfigStore]:
    async with DocumentConfigStore(CountingDocuments(area), poll=FAST) as store:
        yield store


@pytest.fixture
async def writer(area: str) -> AsyncIterator[DocumentConfigStore]:
    async with DocumentConfigStore(MemoryDocumentStore(area)) as store:
        yield store


async def test_another_hosts_write_wakes_a_waiter_before_its_timeout(
    follower: DocumentConfigStore, writer: DocumentConfigStore
) -> None:
    cursor = await follower.current_cursor()
    waiter = asyncio.create_task(follower.wait_for_changes(cursor, NEVER))
    await writer.set_config("t", "system", "svc", "k", {"n": 1})
    await asyncio.wait_for(waiter, WAIT)
    batch = await follower.changes_since(cursor)
    assert [change.version for change in batch.changes] == [1]


async def test_checks_speed_up_after_a_change_and_back_off_to_the_maximum_while_quiet(
    follower: DocumentConfigStore, writer: DocumentConfigStore
) -> None:
    await writer.set_config("t", "system", "svc", "k", {"n": 1})
    batch = await follower.changes_since(None)
    assert batch.changes
    assert follower._poll.pause == FAST.min_interval
    pauses = []
    for _ in range(6):
        batch = await follower.changes_since(batch.cursor)
        assert batch.changes == ()
        pauses.append(follower._poll.pause)
    assert pauses == [0.02, 0.04, 0.08, 0.08, 0.08, 0.08]


async def test_a_quiet_wait_checks_at_most_once_per_poll_max(
    follower: DocumentConfigStore,
) -> None:
    documents = follower.documents
    assert isinstance(documents, CountingDocuments)
    cursor = await follower.current_cursor()
    before = documents.scans
    await follower.wait_for_changes(cursor, 0.4)
    # Quiet from the start: pauses of poll_max (0.08 s), so at most 0.4 / 0.08 checks.
    assert 1 <= documents.scans - before <= 5


async def test_a_wait_never_outlasts_its_timeout_even_when_poll_max_is_longer(
    area: str,
) -> None:
    slow = PollBounds(min_interval=1.0, max_interval=300.0)
    async with DocumentConfigStore(MemoryDocumentStore(area), poll=slow) as store:
        cursor = await store.current_cursor()
        await asyncio.wait_for(store.wait_for_changes(cursor, 0.05), WAIT)


async def test_the_stores_own_write_makes_the_next_check_come_soon(
    follower: DocumentConfigStore,
) -> None:
    assert follower._poll.pause == FAST.max_interval
    await follower.set_config("t", "system", "svc", "k", {"n": 1})
    assert follower._poll.pause == FAST.min_interval


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"poll_min": "0"}, "poll_min"),
        ({"poll_max": "-1"}, "poll_max"),
        ({"poll_min": "5", "poll_max": "1"}, "poll_min"),
        ({"poll_max": "inf"}, "poll_max"),
        ({"poll_min": "soon"}, "poll_min"),
    ],
)
def test_poll_bounds_from_url_options_are_checked(options: dict[str, str], field: str) -> None:
    with pytest.raises(InvalidConfigError) as raised:
        PollBounds.from_options(StoreOptions("test", options))
    assert raised.value.field == field


def test_poll_bounds_are_read_from_url_options() -> None:
    bounds = PollBounds.from_options(StoreOptions("test", {"poll_min": "0.2", "poll_max": "30"}))
    assert bounds == PollBounds(min_interval=0.2, max_interval=30.0)


@pytest.mark.parametrize(
    "url", ["vespa+http://127.0.0.1:8080", "elasticsearch+http://127.0.0.1:9200"]
)
def test_the_http_backends_take_the_poll_bounds_from_their_url(url: str) -> None:
    store = open_store(f"{url}?poll_min=0.2&poll_max=30")
    assert isinstance(store, DocumentConfigStore)
    assert store.poll == PollBounds(min_interval=0.2, max_interval=30.0)

"""Group commit: writes that arrive while one is in flight go to the server as one transaction.

Each test holds a key's write lock from a connection of its own, so the store's first write stays
in flight while the next ones queue behind it; releasing the lock sends the queue as one batch.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from confstore_postgres import PostgresConfigStore
from confstore_postgres._batch import MAX_BATCH_WRITES
from pg_support import LossyProxy, holding_write_lock, run_writers, wait_for_lock_waiters

from confstore import BackendError, ConfigEntry, VersionConflictError, open_store

TENANT = "batch"
FIRST = (TENANT, "system", "svc", "first")


@pytest.fixture
async def blocker(postgres_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection of the test's own, outside the store: it holds write locks."""
    connection = await asyncpg.connect(postgres_url)
    yield connection
    await connection.close()


async def set_config(store: Any, config_key: str, value: dict[str, Any], **options: Any) -> Any:
    return await store.set_config(TENANT, "system", "svc", config_key, value, **options)


async def feed_xids(postgres_url: str, schema: str) -> dict[str, list[int]]:
    """The transaction (xid) of each change-feed row, by config_key."""
    connection = await asyncpg.connect(postgres_url)
    try:
        rows = await connection.fetch(
            f'SELECT config_key, xid FROM "{schema}".config_changes ORDER BY xid, seq'
        )
    finally:
        await connection.close()
    xids: dict[str, list[int]] = {}
    for config_key, xid in rows:
        xids.setdefault(config_key, []).append(xid)
    return xids


async def queued_behind_first(
    store: Any,
    blocker: asyncpg.Connection,
    writes: list[tuple[str, dict[str, Any], dict[str, Any]]],
) -> tuple[ConfigEntry, list[Any]]:
    """Send a write of FIRST and, while it waits for FIRST's lock, ``writes`` (config_key, value,
    options); then let FIRST go. Their outcomes (entries or exceptions), in order."""
    async with holding_write_lock(blocker, FIRST):
        first = asyncio.create_task(store.set_config(*FIRST, {"first": True}))
        await wait_for_lock_waiters(blocker, 1)
        queued = [
            asyncio.create_task(set_config(store, config_key, value, **options))
            for config_key, value, options in writes
        ]
        # One turn of the loop: each task runs to its queued write (nothing in between awaits).
        await asyncio.sleep(0)
    return await first, await asyncio.gather(*queued, return_exceptions=True)


async def test_queued_writes_commit_in_one_transaction_each_with_its_own_outcome(
    pg_store: PostgresConfigStore, postgres_url: str, schema: str, blocker: asyncpg.Connection
) -> None:
    await set_config(pg_store, "existing", {"n": 1})
    await set_config(pg_store, "compared", {"n": 1})
    first, outcomes = await queued_behind_first(
        pg_store,
        blocker,
        [
            ("plain", {"n": 1}, {}),
            ("existing", {"n": 2}, {"expected_version": 0}),  # create-only: exists
            ("compared", {"n": 2}, {"expected_version": 1, "comment": "cas"}),
            ("stale", {"n": 1}, {"expected_version": 3}),  # absent key
            ("created", {"n": 1}, {"expected_version": 0, "updated_by": "me"}),
            ("again", {"n": 1}, {}),
        ],
    )
    plain, existing, compared, stale, created, again = outcomes
    assert first.version == 1
    assert (plain.version, compared.version, created.version, again.version) == (1, 2, 1, 1)
    assert (compared.comment, created.updated_by) == ("cas", "me")
    assert isinstance(existing, VersionConflictError)
    assert (existing.expected, existing.actual) == (0, 1)
    assert isinstance(stale, VersionConflictError)
    assert (stale.expected, stale.actual) == (3, 0)
    for entry in (plain, compared, created, again):
        assert await pg_store.get_config(TENANT, "system", "svc", entry.config_key) == entry
    assert [
        e.version for e in await pg_store.get_config_history(TENANT, "system", "svc", "existing")
    ] == [1]
    assert await pg_store.get_config_history(TENANT, "system", "svc", "stale") == []
    xids = await feed_xids(postgres_url, schema)
    batch_xids = {xids[name][-1] for name in ("plain", "compared", "created", "again")}
    assert len(batch_xids) == 1, "the queued writes did not share one transaction"
    assert xids["first"][0] not in batch_xids


async def test_two_queued_writes_of_one_key_go_in_two_batches_in_order(
    pg_store: PostgresConfigStore, postgres_url: str, schema: str, blocker: asyncpg.Connection
) -> None:
    _, outcomes = await queued_behind_first(
        pg_store,
        blocker,
        [("twice", {"n": 1}, {}), ("other", {"n": 1}, {}), ("twice", {"n": 2}, {})],
    )
    assert [entry.version for entry in outcomes] == [1, 1, 2]
    history = await pg_store.get_config_history(TENANT, "system", "svc", "twice")
    assert [(entry.version, entry.config_value) for entry in history] == [
        (2, {"n": 2}),
        (1, {"n": 1}),
    ]
    xids = await feed_xids(postgres_url, schema)
    assert xids["twice"][0] == xids["other"][0] != xids["twice"][1]


async def test_a_write_the_server_refuses_fails_alone_and_the_rest_of_its_batch_commits(
    pg_store: PostgresConfigStore, postgres_url: str, schema: str, blocker: asyncpg.Connection
) -> None:
    await blocker.execute(
        f'ALTER TABLE "{schema}".config_versions ADD CONSTRAINT no_forbidden '
        "CHECK (value::text NOT LIKE '%forbidden%')"
    )
    _, outcomes = await queued_behind_first(
        pg_store,
        blocker,
        [("before", {"n": 1}, {}), ("refused", {"forbidden": 1}, {}), ("after", {"n": 1}, {})],
    )
    before, refused, after = outcomes
    assert isinstance(refused, BackendError)
    assert "no_forbidden" in str(refused)
    assert (before.version, after.version) == (1, 1)
    assert await pg_store.get_config_history(TENANT, "system", "svc", "refused") == []
    assert await pg_store.get_config(TENANT, "system", "svc", "after") == after


async def test_a_queued_write_cancelled_before_its_batch_is_never_written(
    pg_store: PostgresConfigStore, blocker: asyncpg.Connection
) -> None:
    async with holding_write_lock(blocker, FIRST):
        first = asyncio.create_task(pg_store.set_config(*FIRST, {}))
        await wait_for_lock_waiters(blocker, 1)
        cancelled = asyncio.create_task(set_config(pg_store, "cancelled", {"n": 1}))
        kept = asyncio.create_task(set_config(pg_store, "kept", {"n": 1}))
        await asyncio.sleep(0)  # both queue (see queued_behind_first)
        cancelled.cancel()
    await first
    assert (await kept).version == 1
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert await pg_store.get_config_history(TENANT, "system", "svc", "cancelled") == []


async def test_a_batch_whose_answer_is_lost_is_read_back_not_repeated(
    postgres_url: str, schema: str, blocker: asyncpg.Connection
) -> None:
    port = int(postgres_url.rsplit(":", 1)[1].split("/", 1)[0])
    async with (
        LossyProxy(port) as proxy,
        open_store(
            f"postgresql://postgres@127.0.0.1:{proxy.port}/postgres?schema={schema}"
        ) as store,
    ):
        proxy.lose_answer_to(b"lost-answer-marker")
        _, outcomes = await queued_behind_first(
            store,
            blocker,
            [
                ("a", {"n": 1}, {}),
                ("b", {"marker": "lost-answer-marker"}, {}),
                ("c", {"n": 1}, {"expected_version": 0}),
            ],
        )
        assert proxy.losses == 1
        assert [entry.version for entry in outcomes] == [1, 1, 1]
        for entry in outcomes:
            history = await store.get_config_history(TENANT, "system", "svc", entry.config_key)
            assert history == [entry]


async def test_processes_writing_shared_keys_in_batches_get_exactly_one_to_n(
    pg_store: PostgresConfigStore, store_url: str, postgres_url: str, schema: str
) -> None:
    processes, tasks, writes = 3, 8, 15
    outputs = await run_writers(store_url, processes, writes, "shared", tasks=tasks)
    acknowledged = [line.split(" ", 2) for output in outputs for line in output.splitlines()]
    assert len(acknowledged) == processes * tasks * writes
    for config_key, count in Counter(key for key, _, _ in acknowledged).items():
        history = await pg_store.get_config_history("multi", "system", "svc", config_key, limit=500)
        assert [entry.version for entry in history] == list(range(count, 0, -1))
        stored = {entry.version: entry.config_value for entry in history}
        assert stored == {
            int(version): json.loads(value)
            for key, version, value in acknowledged
            if key == config_key
        }
    writes_per_transaction = Counter(
        xid for xids in (await feed_xids(postgres_url, schema)).values() for xid in xids
    )
    assert max(writes_per_transaction.values()) > 1, "no write went in a batch"


async def test_a_queue_longer_than_a_batch_goes_in_several_batches(
    pg_store: PostgresConfigStore, postgres_url: str, schema: str
) -> None:
    count = MAX_BATCH_WRITES + 100
    entries = await asyncio.gather(
        *(set_config(pg_store, f"k{number}", {"n": number}) for number in range(count))
    )
    assert [entry.version for entry in entries] == [1] * count
    assert [entry.config_value for entry in entries] == [{"n": n} for n in range(count)]
    writes_per_transaction = Counter(
        xid for xids in (await feed_xids(postgres_url, schema)).values() for xid in xids
    )
    assert sum(writes_per_transaction.values()) == count
    assert max(writes_per_transaction.values()) == MAX_BATCH_WRITES

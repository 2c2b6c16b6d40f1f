"""PostgreSQL-specific behaviour on the session's real server: schema, feed, wake-ups, lost answers."""

from __future__ import annotations

import asyncio
import json

import asyncpg
import pytest
from confstore_postgres import PostgresConfigStore
from pg_support import LossyProxy, run_writers, with_options, writer_process

from confstore import (
    BackendUnavailableError,
    ConfigManager,
    CursorExpiredError,
    InvalidConfigError,
    InvalidIdentifierError,
    open_store,
)
from confstore.testing._base import read_feed

KEY = ("acme", "system", "svc", "settings")


async def sql(url: str, statement: str, *arguments: object) -> object:
    connection = await asyncpg.connect(url.split("?", 1)[0])
    try:
        return await connection.fetchval(statement, *arguments)
    finally:
        await connection.close()


async def test_tables_are_created_in_the_named_schema_with_a_schema_version(
    pg_store: PostgresConfigStore, postgres_url: str, schema: str
) -> None:
    await pg_store.set_config(*KEY, {"n": 1})
    tables = await sql(
        postgres_url,
        "SELECT array_agg(tablename::text ORDER BY tablename) FROM pg_tables WHERE schemaname = $1",
        schema,
    )
    assert tables == ["config_changes", "config_heads", "config_versions", "schema_info"]
    assert await sql(postgres_url, f'SELECT schema_version FROM "{schema}".schema_info') == 1


async def test_two_schemas_are_two_independent_stores(postgres_url: str, schema: str) -> None:
    other = f"{schema}_b"
    try:
        async with (
            open_store(with_options(postgres_url, schema=schema)) as first,
            open_store(with_options(postgres_url, schema=other)) as second,
        ):
            await first.set_config(*KEY, {"store": 1})
            assert await second.get_config(*KEY) is None
            assert (await second.get_stats())["total_versions"] == 0
    finally:
        await sql(postgres_url, f'DROP SCHEMA IF EXISTS "{other}" CASCADE')


async def test_a_newer_schema_version_is_refused_clearly(
    pg_store: PostgresConfigStore, postgres_url: str, schema: str, store_url: str
) -> None:
    await pg_store.set_config(*KEY, {"n": 1})
    await sql(postgres_url, f'UPDATE "{schema}".schema_info SET schema_version = 2')
    newer = open_store(store_url)
    with pytest.raises(BackendUnavailableError, match=r"schema version 2.*upgrade"):
        await newer.initialize()
    await newer.close()


async def test_stores_initialising_one_schema_at_once_create_it_once(store_url: str) -> None:
    stores = [open_store(store_url) for _ in range(5)]
    try:
        await asyncio.gather(*(store.initialize() for store in stores))
        await stores[0].set_config(*KEY, {"n": 1})
        assert (await stores[4].get_config(*KEY)) is not None
    finally:
        for store in stores:
            await store.close()


async def test_nul_in_audit_text_is_refused_before_any_sql(store_url: str) -> None:
    never_opened = open_store(store_url)  # any I/O would raise BackendUnavailableError
    with pytest.raises(InvalidConfigError):
        await never_opened.set_config(*KEY, {"n": 1}, comment="a\x00b")
    with pytest.raises(InvalidConfigError):
        await never_opened.delete_config(*KEY, updated_by="\x00")
    with pytest.raises(InvalidIdentifierError):
        await never_opened.set_config("acme'; DROP TABLE x; --", "system", "svc", "k", {})
    with pytest.raises(InvalidConfigError):
        await never_opened.set_config(*KEY, {"lone": "\ud800"})


async def test_sql_in_values_and_audit_text_is_only_data(
    pg_store: PostgresConfigStore, postgres_url: str, schema: str
) -> None:
    hostile = "'); DROP SCHEMA confstore CASCADE; --"
    value = {hostile: hostile, "nul": "\x00", "quote": "\"'\\"}
    written = await pg_store.set_config(*KEY, value, updated_by=hostile, comment=hostile)
    stored = await pg_store.get_config(*KEY)
    assert stored == written
    assert stored is not None
    assert stored.config_value == value
    assert await sql(postgres_url, f'SELECT count(*) FROM "{schema}".config_versions') == 1


async def test_an_expired_cursor_raises_cursor_expired(
    pg_store: PostgresConfigStore, postgres_url: str, schema: str
) -> None:
    await pg_store.set_config(*KEY, {"n": 1})
    cursor = await pg_store.current_cursor()
    await pg_store.set_config(*KEY, {"n": 2})
    # What retention does when it drops old feed rows: raise the floor past this cursor.
    await sql(
        postgres_url,
        f'UPDATE "{schema}".schema_info SET feed_floor_xid = pg_current_xact_id()',
    )
    with pytest.raises(CursorExpiredError):
        await pg_store.changes_since(cursor)
    fresh = await pg_store.current_cursor()
    assert (await pg_store.changes_since(fresh)).changes == ()


async def test_a_cursor_of_a_recreated_schema_is_expired(
    pg_store: PostgresConfigStore, postgres_url: str, schema: str, store_url: str
) -> None:
    await pg_store.set_config(*KEY, {"n": 1})
    cursor = await pg_store.current_cursor()
    await pg_store.close()
    await sql(postgres_url, f'DROP SCHEMA "{schema}" CASCADE')
    async with open_store(store_url) as recreated:
        with pytest.raises(CursorExpiredError):
            await recreated.changes_since(cursor)


async def test_a_transaction_that_commits_late_is_not_skipped_and_does_not_stall_the_feed(
    pg_store: PostgresConfigStore, postgres_url: str, schema: str
) -> None:
    cursor = await pg_store.current_cursor()
    late = await asyncpg.connect(postgres_url)
    try:
        transaction = late.transaction()
        await transaction.start()
        # An older transaction id than the write below, committed after it.
        await late.execute(
            f'INSERT INTO "{schema}".config_changes (tenant_id, scope, service, config_key, kind, '
            "version) VALUES ('acme', 'system', 'svc', 'late', 'set', 1)"
        )
        await pg_store.set_config("acme", "system", "svc", "early", {"n": 1})
        changes, cursor = await read_feed(pg_store, cursor)
        assert [change.key.config_key for change in changes] == ["early"]
        await transaction.commit()
    finally:
        await late.close()
    changes, _ = await read_feed(pg_store, cursor)
    assert [change.key.config_key for change in changes] == ["late"]


async def test_feed_pages_inside_one_large_transaction(pg_store: PostgresConfigStore) -> None:
    cursor = await pg_store.current_cursor()
    document = {
        "configs": [
            {
                "scope": "agent",
                "service": "bot",
                "config_key": f"k{number:03}",
                "config_value": {"n": number},
                "version": 1,
                "created_at": "2024-01-01T00:00:00+00:00",
                "updated_at": "2024-01-01T00:00:00+00:00",
            }
            for number in range(25)
        ]
    }
    assert await pg_store.import_configs("acme", document) == 25
    seen = []
    while True:
        batch = await pg_store.changes_since(cursor, limit=7)
        seen.extend(change.key.config_key for change in batch.changes)
        cursor = batch.cursor
        if not batch.has_more:
            break
    assert seen == [f"k{number:03}" for number in range(25)]


async def test_wait_for_changes_wakes_on_a_write_from_another_process(
    pg_store: PostgresConfigStore, store_url: str
) -> None:
    cursor = await pg_store.current_cursor()
    await pg_store.wait_for_changes(cursor, 30)  # the first call connects the listener
    batch = await pg_store.changes_since(cursor)
    async with writer_process(store_url, "woken", 1, "other") as writer:
        assert writer.stdin is not None
        assert writer.stdout is not None
        waiting = asyncio.create_task(pg_store.wait_for_changes(batch.cursor, 600))
        writer.stdin.write(b"go\n")
        await writer.stdin.drain()
        async with asyncio.timeout(60):  # far below the 600 s the wait would sleep unwoken
            await waiting
            line = await writer.stdout.readline()
    assert line.startswith(b"1 ")
    changes, _ = await read_feed(pg_store, batch.cursor)
    assert [change.key.config_key for change in changes] == ["woken"]


async def test_a_notify_that_arrives_before_waiting_on_a_fresh_cursor_still_wakes(
    pg_store: PostgresConfigStore, store_url: str
) -> None:
    await pg_store.wait_for_changes(None, 30)  # the first call connects the listener
    cursor = await pg_store.current_cursor()  # what a follower resyncing starts from
    # Another wait, on no cursor, returns on the next notification: once it has, the write's
    # NOTIFY has arrived, before anything waits on ``cursor``.
    arrived = asyncio.create_task(pg_store.wait_for_changes(None, 600))
    await asyncio.sleep(0)
    async with writer_process(store_url, "early", 1, "other") as writer:
        assert writer.stdin is not None
        writer.stdin.write(b"go\n")
        await writer.stdin.drain()
        async with asyncio.timeout(60):
            await arrived
    async with asyncio.timeout(10):  # no other write comes: only that NOTIFY can end this wait
        await pg_store.wait_for_changes(cursor, 600)
    changes, _ = await read_feed(pg_store, cursor)
    assert [change.key.config_key for change in changes] == ["early"]


async def test_manager_watch_sees_another_processs_write_long_before_its_poll(
    pg_store: PostgresConfigStore, store_url: str
) -> None:
    async with ConfigManager(pg_store, poll_interval=600) as manager:
        await manager.get_system_config("multi")
        events = manager.watch(tenant_id="multi")
        async with writer_process(store_url, "system_config", 1, "other") as writer:
            assert writer.stdin is not None
            writer.stdin.write(b"go\n")
            await writer.stdin.drain()
            async with asyncio.timeout(60):  # the poll would come after 600 s
                event = await anext(aiter(events))
    assert (event.key.config_key, event.version) == ("system_config", 1)


async def test_three_processes_writing_one_key_get_exactly_one_to_n(
    pg_store: PostgresConfigStore, store_url: str
) -> None:
    outputs = await run_writers(store_url, 3, 20, "contended")
    acknowledged = [line.split(" ", 1) for output in outputs for line in output.splitlines()]
    versions = sorted(int(version) for version, _ in acknowledged)
    assert versions == list(range(1, 61))
    history = await pg_store.get_config_history("multi", "system", "svc", "contended", limit=500)
    assert [entry.version for entry in history] == list(range(60, 0, -1))
    stored = {entry.version: entry.config_value for entry in history}
    assert stored == {int(version): json.loads(value) for version, value in acknowledged}


async def test_a_write_whose_answer_is_lost_is_read_back_not_repeated(
    postgres_url: str, schema: str
) -> None:
    port = int(postgres_url.rsplit(":", 1)[1].split("/", 1)[0])
    async with LossyProxy(port) as proxy:
        url = f"postgresql://postgres@127.0.0.1:{proxy.port}/postgres?schema={schema}"
        async with open_store(url) as store:
            await store.set_config(*KEY, {"n": 1})
            proxy.lose_answer_to(b"lost-answer-marker")
            entry = await store.set_config(*KEY, {"marker": "lost-answer-marker"})
            assert proxy.lost.is_set()
            assert entry.version == 2
            history = await store.get_config_history(*KEY)
            assert [item.version for item in history] == [2, 1]
            assert history[0].config_value == {"marker": "lost-answer-marker"}


async def test_a_write_cut_off_before_it_ran_is_sent_again_once(
    pg_store: PostgresConfigStore, postgres_url: str
) -> None:
    await pg_store.set_config(*KEY, {"n": 1})
    blocker = await asyncpg.connect(postgres_url)
    try:
        transaction = blocker.transaction()
        await transaction.start()
        # Hold the key's write lock, so the store's write waits inside its statement.
        await blocker.execute(
            "SELECT pg_advisory_xact_lock(x'636F6E66'::int, hashtext($1))", "/".join(KEY)
        )
        writing = asyncio.create_task(pg_store.set_config(*KEY, {"n": 2}))
        async with asyncio.timeout(30):
            # PostgreSQL announces no "a session started waiting": look until it shows.
            while not await blocker.fetchval(  # noqa: ASYNC110
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'advisory'"
            ):
                await asyncio.sleep(0.01)
        await blocker.fetchval(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE wait_event = 'advisory'"
        )
        await transaction.rollback()
        entry = await writing
    finally:
        await blocker.close()
    assert entry.version == 2
    assert [item.version for item in await pg_store.get_config_history(*KEY)] == [2, 1]


async def test_the_privileges_the_readme_lists_are_enough(
    pg_store: PostgresConfigStore, postgres_url: str, schema: str
) -> None:
    role = f"app_{schema}"
    tables = "config_heads, config_versions, config_changes, schema_info"
    await sql(postgres_url, f"CREATE ROLE {role} LOGIN")
    try:
        for grant in (
            f'GRANT USAGE ON SCHEMA "{schema}" TO {role}',
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON {', '.join(f'{schema}.{t}' for t in tables.split(', '))} TO {role}",
        ):
            await sql(postgres_url, grant)
        base, _, _ = postgres_url.partition("?")
        url = with_options(base.replace("postgres:@", f"{role}:@", 1), schema=schema)
        async with open_store(url) as limited:
            cursor = await limited.current_cursor()
            await limited.set_config(*KEY, {"n": 1})
            await limited.set_config(*KEY, {"n": 2}, expected_version=1)
            document = await limited.export_configs("acme", include_history=True)
            assert await limited.import_configs("copy", document, mode="append") == 2
            assert await limited.delete_config(*KEY) is True
            assert await limited.delete_config(*KEY, purge=True) is True
            await limited.wait_for_changes(cursor, 0.01)
            changes, _ = await read_feed(limited, cursor)
            assert len(changes) == 6
    finally:
        await sql(postgres_url, f'REVOKE ALL ON ALL TABLES IN SCHEMA "{schema}" FROM {role}')
        await sql(postgres_url, f'REVOKE ALL ON SCHEMA "{schema}" FROM {role}')
        await sql(postgres_url, f"DROP ROLE {role}")

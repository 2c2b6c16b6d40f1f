"""Commits to an SQLite file, noticed within milliseconds: the SQLite store's ``wait_for_changes``.

A ``CommitWatcher`` is one daemon thread with its own connection. While at least one task waits,
it follows ``PRAGMA data_version``: SQLite changes that number when another connection (any
process, or this store's own writer) commits, and reading it costs a few microseconds (the WAL
index header is in shared memory). When it changes, the thread reads the feed's newest position
and wakes the waiters whose cursor is older. With nobody waiting the thread blocks.

When to look: on Linux the thread sleeps on an inotify watch of the ``-wal`` file
(``_wal_events``) and costs no CPU while nothing is written. A write to the WAL is only a hint:
SQLite writes a transaction's frames (and fsyncs them) before it publishes the commit in the
shared-memory index, which is mapped memory and raises no file event, so after each event the
thread checks ``data_version`` every millisecond until the commit shows (for at most a second),
and once a second in any case. Where file events are unavailable (another OS, a read-only file
system without a WAL, no inotify watches left), it checks every ``interval`` instead.

Measured (``python -m benchmarks propagation``; numbers in docs/performance.md): the timer alone
(20 ms) cost about 1% of a core idle on a loaded machine; the file events alone (waking the
follower on each event, without the data_version follow-up) woke followers before the commit was
published and left them asleep until their next poll (p99 0.8 s).

The thread holds no reference to the store: a store that is never closed is collected, and its
finalizer stops the thread (a daemon, so it never keeps the interpreter alive either). At exit,
the watchers still running are stopped and given a moment to close their connections, so the
store's own connections, closed after them, leave the file checkpointed.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable
from typing import Final

from ._sqlite_thread import wait_until_ended
from ._wal_events import WalEvents

# How often a waited-on store checks for commits: the propagation delay's upper bound.
DEFAULT_WATCH_INTERVAL: Final = 0.02
# After a write to the WAL, data_version is checked this often until the commit is published
# (the write of the frames, their fsync, then the index), for at most _SETTLING_SECONDS.
_SETTLING_INTERVAL: Final = 0.001
_SETTLING_SECONDS: Final = 1.0
# With file events, data_version is still checked this often in case one was missed.
_RECHECK_SECONDS: Final = 1.0
# How long the interpreter waits at exit for running watchers to close their connections.
_EXIT_WAIT_SECONDS: Final = 0.5


def _wake(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)


class _WatchState:
    """What the watcher thread and the waiting tasks share, under one condition variable."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.condition = threading.Condition()
        # Each waiting future with the feed position it waits to be passed.
        self.waiters: dict[asyncio.Future[None], int] = {}
        self.position = -1  # unknown until the thread has read it
        self.error: BaseException | None = None
        self.stopped = False
        # Wakes the thread from a wait for file events (set while it has one).
        self.interrupt: Callable[[], None] | None = None

    def register(self, after: int) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        with self.condition:
            if self.error is not None:
                future.set_exception(self.error)
            elif self.stopped or self.position > after:
                future.set_result(None)
            else:
                self.waiters[future] = after
                self.condition.notify()
        return future

    def unregister(self, future: asyncio.Future[None]) -> None:
        with self.condition:
            self.waiters.pop(future, None)

    def wait_for_waiters(self) -> bool:
        """Block while nobody waits; False once stopped."""
        with self.condition:
            while not self.waiters and not self.stopped:
                self.condition.wait()
            return not self.stopped

    def publish(self, position: int) -> None:
        with self.condition:
            self.position = max(self.position, position)
            passed = [future for future, after in self.waiters.items() if position > after]
            for future in passed:
                del self.waiters[future]
        for future in passed:
            _notify(future, None)

    def finish(self, error: BaseException | None) -> None:
        """Stop for good; waiters return (or get ``error``: the watch connection failed)."""
        with self.condition:
            self.stopped = True
            if error is not None:
                self.error = error
            waiters, self.waiters = list(self.waiters), {}
            self.condition.notify_all()
        interrupt = self.interrupt
        if interrupt is not None:
            interrupt()
        for future in waiters:
            _notify(future, error)

    def stop(self) -> None:
        self.finish(None)


def _notify(future: asyncio.Future[None], error: BaseException | None) -> None:
    # The loop may have closed since the task started waiting: nobody is waiting any more.
    with contextlib.suppress(RuntimeError):
        future.get_loop().call_soon_threadsafe(_wake, future, error)


def _watch(
    state: _WatchState,
    connect: Callable[[], sqlite3.Connection],
    read_position: Callable[[sqlite3.Connection], int],
    wal_path: str | None,
) -> None:
    """The thread's body: while anyone waits, check ``data_version`` after each write to the
    WAL (quickly, until the commit is published), else every ``interval``."""
    connection: sqlite3.Connection | None = None
    events: WalEvents | None = None
    try:
        connection = connect()
        seen = _data_version(connection)
        state.publish(read_position(connection))
        events = _wal_events(wal_path, state)
        settling_until = 0.0
        while state.wait_for_waiters():
            version = _data_version(connection)
            if version != seen:
                seen, settling_until = version, 0.0
                state.publish(read_position(connection))
            if events is None:
                time.sleep(state.interval)
            elif time.monotonic() < settling_until:
                time.sleep(_SETTLING_INTERVAL)
            elif _written(events, state):
                settling_until = time.monotonic() + _SETTLING_SECONDS
            elif state.interrupt is None:
                events = None  # the watch broke: the timer from now on
    except sqlite3.Error as error:
        state.finish(error)
    finally:
        if events is not None:
            state.interrupt = None
            events.close()
        if connection is not None:
            with contextlib.suppress(sqlite3.Error):
                connection.close()


def _wal_events(wal_path: str | None, state: _WatchState) -> WalEvents | None:
    """File events for the WAL where the platform has them; None: check on a timer."""
    if wal_path is None:
        return None
    try:
        events = WalEvents(wal_path)
    except OSError:
        return None
    state.interrupt = events.interrupt
    return events


def _written(events: WalEvents, state: _WatchState) -> bool:
    """Whether the WAL was written (False after ``_RECHECK_SECONDS`` or an interrupt). A watch
    that fails is closed, and ``state.interrupt`` cleared to say so."""
    try:
        return events.wait(_RECHECK_SECONDS)
    except OSError:
        state.interrupt = None
        events.close()
        return False


def _data_version(connection: sqlite3.Connection) -> int:
    return int(connection.execute("PRAGMA data_version").fetchall()[0][0])


class CommitWatcher:
    """Wakes waiting tasks soon after a commit to the file moves the change feed past them.

    ``connect()`` opens the thread's connection; ``read_position(connection)`` returns the
    feed's newest position (a cursor compares with it as an int). ``owner`` is the store:
    when it is collected without ``stop()``, the thread stops.
    """

    def __init__(
        self,
        owner: object,
        connect: Callable[[], sqlite3.Connection],
        read_position: Callable[[sqlite3.Connection], int],
        interval: float,
        wal_path: str | None = None,
    ) -> None:
        self._state = _WatchState(interval)
        self._thread = threading.Thread(
            target=_watch,
            args=(self._state, connect, read_position, wal_path),
            name="confstore-sqlite-watch",
            daemon=True,
        )
        self._finalizer = weakref.finalize(owner, self._state.stop)
        self._finalizer.atexit = False
        self._thread.start()
        _running.add(self)

    async def wait(self, after: int, timeout: float) -> None:
        """Return once the feed is past ``after``, after ``timeout`` s, or when stopped.

        Raises the driver's error when the watch connection failed (the caller translates it).
        """
        future = self._state.register(after)
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await future
        finally:
            self._state.unregister(future)

    @property
    def failed(self) -> bool:
        return self._state.error is not None

    def stop(self) -> None:
        """End the thread (it closes its connection); waiting tasks return. Idempotent."""
        self._finalizer.detach()
        self._state.stop()
        _running.discard(self)

    async def close(self) -> None:
        """``stop()``, then wait (without blocking the loop) until the thread has closed its
        connection and ended."""
        self.stop()
        await wait_until_ended(self._thread)

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)


_running: weakref.WeakSet[CommitWatcher] = weakref.WeakSet()


def _stop_running_watchers() -> None:
    watchers = list(_running)
    for watcher in watchers:
        watcher.stop()
    for watcher in watchers:
        watcher.join(_EXIT_WAIT_SECONDS / max(1, len(watchers)))


# Registered after _sqlite_thread's exit handler, so it runs before it (atexit runs in reverse).
atexit.register(_stop_running_watchers)

"""The SQLite store's own worker threads: each owns one sqlite3 connection and runs work on it.

A ``SQLiteThread`` is a daemon thread with a queue. ``call(work, *args)`` runs
``work(connection, *args)`` there and returns a future of the result: one thread hop, whatever
``work`` does (a read builds its entries next to its query; a group commit runs a whole
transaction). ``post(work, *args)`` queues work that reports back by itself.

Lifecycle. A store's threads are a ``ThreadGroup``. ``await group.close()`` runs what is queued,
closes the connections and ends the threads. A group that is never closed must not keep the
process alive nor lose an acknowledged write:

- the threads are daemons, so the interpreter never waits for them;
- a write is acknowledged only after its COMMIT returned (with ``synchronous=FULL``, after the
  fsync), so whatever happens to a thread later, acknowledged writes are on disk;
- when the store that owns a group is garbage collected, or the interpreter exits, the group
  warns (``ResourceWarning``, shown with ``-W default`` or ``-X dev`` as for an unclosed aiohttp
  session), closes its connections after the work already queued, and at exit waits a bounded
  time for that, so the file is left clean (the WAL checkpointed) in the usual case.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import sqlite3
import threading
import time
import warnings
import weakref
from collections.abc import Callable
from queue import SimpleQueue
from typing import Any, Final, TypeVar

_T = TypeVar("_T")
_Job = tuple["asyncio.Future[Any] | None", Callable[..., Any], tuple[Any, ...]]

# How long the interpreter waits at exit for abandoned threads to finish queued work and close.
EXIT_WAIT_SECONDS: Final = 2.0


def _connect_marker(connection: sqlite3.Connection) -> None:
    raise AssertionError("never called: marks the job that opens the connection")


def _close_marker(connection: sqlite3.Connection) -> None:
    raise AssertionError("never called: marks the job that closes the connection")


def _resolve(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():  # the caller was cancelled
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


def _report(future: asyncio.Future[Any] | None, result: Any, error: BaseException | None) -> None:
    if future is None:
        return
    # The loop closed while the work ran (asyncio.run returned): nobody is waiting any more.
    with contextlib.suppress(RuntimeError):
        future.get_loop().call_soon_threadsafe(_resolve, future, result, error)


def _serve(jobs: SimpleQueue[_Job]) -> None:
    """The thread's body. It holds no reference to the store, so an abandoned store can be
    collected (which stops this thread)."""
    connection: sqlite3.Connection | None = None
    while True:
        future, work, args = jobs.get()
        if work is _close_marker:
            if connection is not None:
                with contextlib.suppress(sqlite3.Error):
                    connection.close()
            _report(future, None, None)
            return
        try:
            if work is _connect_marker:
                connection = args[0]()
                result = None
            elif connection is None:
                raise sqlite3.ProgrammingError("the connection is not open")
            else:
                result = work(connection, *args)
        except BaseException as error:
            _report(future, None, error)
        else:
            _report(future, result, None)


class SQLiteThread:
    """One daemon thread and the sqlite3 connection it opens, uses and closes."""

    __slots__ = ("_jobs", "_thread", "running")

    def __init__(self, name: str) -> None:
        self._jobs: SimpleQueue[_Job] = SimpleQueue()
        self._thread = threading.Thread(target=_serve, args=(self._jobs,), name=name, daemon=True)
        self.running = False

    async def open(self, connect: Callable[[], sqlite3.Connection]) -> None:
        """Start the thread and open its connection there with ``connect()``."""
        self._thread.start()
        self.running = True
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._jobs.put((future, _connect_marker, (connect,)))
        await future

    def call(self, work: Callable[..., _T], *args: Any) -> asyncio.Future[_T]:
        """Run ``work(connection, *args)`` on the thread; the future gets its result or error.

        Raises sqlite3.ProgrammingError when the thread is stopped.
        """
        if not self.running:
            raise sqlite3.ProgrammingError("the SQLite connection is closed")
        future: asyncio.Future[_T] = asyncio.get_running_loop().create_future()
        self._jobs.put((future, work, args))
        return future

    def post(self, work: Callable[..., Any], *args: Any) -> None:
        """Run ``work(connection, *args)`` on the thread; it reports its outcome by itself."""
        if not self.running:
            raise sqlite3.ProgrammingError("the SQLite connection is closed")
        self._jobs.put((None, work, args))

    def stop(self, future: asyncio.Future[None] | None = None) -> None:
        """After the work queued so far, close the connection and end the thread; ``future``
        (if given) is resolved then. Idempotent."""
        if not self.running:
            if future is not None:
                future.set_result(None)
            return
        self.running = False
        self._jobs.put((future, _close_marker, ()))

    async def close(self) -> None:
        """``stop()`` and wait for it."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.stop(future)
        await future

    def join(self, timeout: float) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout)


class ThreadGroup:
    """The threads of one open store, closed together; warns if its store never closes it."""

    def __init__(self, owner: object, description: str, threads: list[SQLiteThread]) -> None:
        self.description = description
        self.threads = threads
        # Called when ``owner`` is collected; at exit, _close_abandoned_groups handles the rest.
        self._finalizer = weakref.finalize(owner, self.abandon)
        self._finalizer.atexit = False
        _open_groups.add(self)

    async def close(self) -> None:
        """Close every connection after the work queued on it, and end the threads."""
        self._finalizer.detach()
        _open_groups.discard(self)
        for thread in self.threads:
            await thread.close()

    def abandon(self) -> None:
        """The owner went away open: warn, then close the connections without waiting."""
        if self not in _open_groups:
            return
        _open_groups.discard(self)
        warnings.warn(
            f"unclosed {self.description}: call close() or use 'async with' "
            "(its connections are closed now; writes acknowledged so far are on disk)",
            ResourceWarning,
            stacklevel=2,
        )
        for thread in self.threads:
            thread.stop()

    def join(self, deadline: float) -> None:
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))


_open_groups: set[ThreadGroup] = set()


def _close_abandoned_groups() -> None:
    """At interpreter exit: warn about stores never closed and let their threads close cleanly."""
    groups = list(_open_groups)
    for group in groups:
        group.abandon()
    deadline = time.monotonic() + EXIT_WAIT_SECONDS
    for group in groups:
        group.join(deadline)


atexit.register(_close_abandoned_groups)

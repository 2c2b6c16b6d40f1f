"""The SQLite store's own worker threads: each owns one sqlite3 connection and runs work on it.

A ``SQLiteThread`` is a daemon thread with a queue. ``call(work, *args)`` runs
``work(connection, *args)`` there and returns a future of the result: one thread hop, whatever
``work`` does (a read builds its entries next to its query; a group commit runs a whole
transaction). ``run(work, args, callback, context)`` is the same hop with a plain callback
instead of a future, and ``post(work, *args)`` queues work that reports nothing.

Loans. ``borrow()`` lends the connection to the calling thread while the worker is idle (every
job it was given has finished), and the worker starts no job until ``give_back()``: the SQLite
store commits a lone write on the event loop's thread that way, without a hop. A lock that the
worker holds for each job makes the two exclusive.

Replies. A result goes back to the event loop that asked through a ``_LoopReplies``: a queue
and one file descriptor (an eventfd on Linux, else a pipe) that the loop watches with
``add_reader``. The worker appends the reply and writes the descriptor only if the loop has not
been signalled since it last drained; the loop runs every queued reply in that one callback. It
costs less than ``call_soon_threadsafe`` (which queues a handle, then sends a byte on the loop's
own socket pair, which the loop reads until it raises BlockingIOError, and only then runs the
handle): a thread hop was 47 us instead of 65 us on this project's VM. A loop without
``add_reader`` (Windows' proactor) and a second loop using the same store while the first is
still open get ``call_soon_threadsafe``.

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

A reply descriptor is closed by the worker's last reply (or by the worker itself when its loop
has closed), never while the worker might still write it, so its number cannot be reused under
a late write.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import sqlite3
import threading
import time
import warnings
import weakref
from collections import deque
from collections.abc import Callable
from queue import SimpleQueue
from typing import Any, Final, TypeVar

_T = TypeVar("_T")
# Called on the loop with (context, result, error) once the work has run.
Callback = Callable[[Any, Any, "BaseException | None"], None]
# Runs a callback on the loop: _LoopReplies.send or the loop's call_soon_threadsafe.
_Reply = Callable[..., Any]
_Job = tuple["_Reply | None", "Callback | None", Any, Callable[..., Any], tuple[Any, ...]]

# How long the interpreter waits at exit for abandoned threads to finish queued work and close.
EXIT_WAIT_SECONDS: Final = 2.0
# How often close() checks whether a stopped thread has returned (it is microseconds away).
_END_POLL_SECONDS: Final = 0.001
_SIGNAL: Final = (1).to_bytes(8, "little")  # an eventfd adds the 8-byte value; a pipe gets bytes


def _connect_marker(connection: sqlite3.Connection) -> None:
    raise AssertionError("never called: marks the job that opens the connection")


def _close_marker(connection: sqlite3.Connection) -> None:
    raise AssertionError("never called: marks the job that closes the connection")


def _close_companion(connection: sqlite3.Connection, companion: sqlite3.Connection) -> None:
    companion.close()


def _resolve(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():  # the caller was cancelled
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


class _LoopReplies:
    """Replies of one worker thread to one event loop, through a descriptor the loop watches."""

    __slots__ = ("_items", "_read_fd", "_signalled", "_write_fd", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop, read_fd: int, write_fd: int) -> None:
        self.loop = loop
        self._read_fd = read_fd
        self._write_fd = write_fd
        self._items: deque[tuple[Callback, Any, Any, BaseException | None]] = deque()
        self._signalled = False

    @classmethod
    def attach(cls, loop: asyncio.AbstractEventLoop) -> _LoopReplies | None:
        """Replies for ``loop`` (the running loop), or None when it cannot watch a descriptor."""
        if hasattr(os, "eventfd"):
            read_fd = write_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        else:
            read_fd, write_fd = os.pipe()
            os.set_blocking(read_fd, False)
            os.set_blocking(write_fd, False)
        replies = cls(loop, read_fd, write_fd)
        try:
            loop.add_reader(read_fd, replies._drain)
        except (NotImplementedError, RuntimeError):
            replies._close_descriptors()
            return None
        return replies

    def send(
        self, callback: Callback, context: Any, result: Any, error: BaseException | None
    ) -> None:
        """On the worker thread: run ``callback(context, result, error)`` on the loop."""
        self._items.append((callback, context, result, error))
        if not self._signalled:
            self._signalled = True
            # A full pipe (the loop stopped draining) already wakes the loop: nothing to add.
            with contextlib.suppress(BlockingIOError):
                os.write(self._write_fd, _SIGNAL)

    def _drain(self) -> None:
        # Read the signal first, then clear the flag: a reply queued after the clear signals
        # again, and one queued before it is in ``_items`` below. (Clearing first lost replies:
        # a signal written between the clear and the read was consumed here while the flag
        # stayed set, so the next reply never woke the loop.)
        with contextlib.suppress(BlockingIOError):
            os.read(self._read_fd, 4096)
        self._signalled = False
        items = self._items
        while items:
            callback, context, result, error = items.popleft()
            try:
                callback(context, result, error)
            except Exception as exc:  # one failing callback must not strand the others
                self.loop.call_exception_handler(
                    {"message": "confstore: a SQLite reply callback failed", "exception": exc}
                )

    def retire(self) -> None:
        """On the worker thread, after its last reply: have the descriptors closed."""
        if self.loop.is_closed():
            self._close_descriptors()
        else:
            # If the loop closes before it drains this, the descriptors stay open (a leak of
            # one descriptor, never a write to a reused one).
            self.send(_detach, self, None, None)

    def _close_descriptors(self) -> None:
        os.close(self._read_fd)
        if self._write_fd != self._read_fd:
            os.close(self._write_fd)


def _detach(replies: _LoopReplies, result: object, error: BaseException | None) -> None:
    replies.loop.remove_reader(replies._read_fd)
    replies._close_descriptors()


def _retire_marker(connection: sqlite3.Connection) -> None:
    raise AssertionError("never called: marks the job that retires a loop's replies")


class _Shared:
    """What a worker thread shares with the loop that lends its connection (``borrow``): the
    connection, the lock held by whoever uses it, and how many jobs the worker has finished."""

    __slots__ = ("connection", "finished", "lock")

    def __init__(self) -> None:
        self.connection: sqlite3.Connection | None = None
        self.lock = threading.Lock()
        # Written by the worker only (so no lost update); read by the loop.
        self.finished = 0


def _serve(jobs: SimpleQueue[_Job], shared: _Shared) -> None:
    """The thread's body. It holds no reference to the store, so an abandoned store can be
    collected (which stops this thread)."""
    while True:
        reply, callback, context, work, args = jobs.get()
        result: Any = None
        error: BaseException | None = None
        with shared.lock:
            connection = shared.connection
            if work is _close_marker:
                shared.connection = None
                if connection is not None:
                    with contextlib.suppress(sqlite3.Error):
                        connection.close()
            else:
                try:
                    if work is _connect_marker:
                        shared.connection = args[0]()
                    elif work is _retire_marker:
                        args[0].retire()
                    elif connection is None:
                        raise sqlite3.ProgrammingError("the connection is not open")
                    else:
                        result = work(connection, *args)
                except BaseException as raised:
                    error = raised
            shared.finished += 1
        if reply is not None:
            # The loop closed while the work ran (asyncio.run returned): nobody is waiting.
            with contextlib.suppress(RuntimeError):
                reply(callback, context, result, error)
        if work is _close_marker:
            if args[0] is not None:
                args[0].retire()
            return


class SQLiteThread:
    """One daemon thread and the sqlite3 connection it opens, uses and closes."""

    __slots__ = (
        "_companions",
        "_jobs",
        "_plain_loop",
        "_replies",
        "_shared",
        "_thread",
        "queued",
        "running",
    )

    def __init__(self, name: str) -> None:
        self._jobs: SimpleQueue[_Job] = SimpleQueue()
        self._shared = _Shared()
        self._thread = threading.Thread(
            target=_serve, args=(self._jobs, self._shared), name=name, daemon=True
        )
        # Jobs ever given to the thread (``borrow`` lends the connection only when the thread
        # has finished them all).
        self.queued = 0
        self._replies: _LoopReplies | None = None
        # A loop that cannot watch a descriptor (it gets call_soon_threadsafe).
        self._plain_loop: asyncio.AbstractEventLoop | None = None
        # Other connections this thread closes just before its own (see close_with).
        self._companions: list[sqlite3.Connection] = []
        self.running = False

    async def open(self, connect: Callable[[], sqlite3.Connection]) -> None:
        """Start the thread and open its connection there with ``connect()``."""
        self._thread.start()
        self.running = True
        await self._queue_call(_connect_marker, (connect,))

    def call(self, work: Callable[..., _T], *args: Any) -> asyncio.Future[_T]:
        """Run ``work(connection, *args)`` on the thread; the future gets its result or error.

        Raises sqlite3.ProgrammingError when the thread is stopped.
        """
        if not self.running:
            raise sqlite3.ProgrammingError("the SQLite connection is closed")
        return self._queue_call(work, args)

    def run(
        self, work: Callable[..., Any], args: tuple[Any, ...], callback: Callback, context: Any
    ) -> None:
        """Run ``work(connection, *args)`` on the thread, then ``callback(context, result,
        error)`` on the calling event loop (no future, no task). Raises sqlite3.ProgrammingError
        when the thread is stopped."""
        if not self.running:
            raise sqlite3.ProgrammingError("the SQLite connection is closed")
        self._put((self._reply(asyncio.get_running_loop()), callback, context, work, args))

    def post(self, work: Callable[..., Any], *args: Any) -> None:
        """Run ``work(connection, *args)`` on the thread; it reports its outcome by itself."""
        if not self.running:
            raise sqlite3.ProgrammingError("the SQLite connection is closed")
        self._put((None, None, None, work, args))

    def close_with(self, connection: sqlite3.Connection) -> None:
        """Close ``connection`` (opened with ``check_same_thread=False``) on this thread when it
        stops, after the work queued so far and just before its own connection, so the
        thread's connection stays the file's last one (the one that checkpoints the WAL)."""
        self._companions.append(connection)

    def stop(self, future: asyncio.Future[None] | None = None) -> None:
        """After the work queued so far, close the connection (and those given to
        ``close_with``) and end the thread; ``future`` (if given) is resolved then. Idempotent."""
        if not self.running:
            if future is not None:
                future.set_result(None)
            return
        self.running = False
        for companion in self._companions:
            self._put((None, None, None, _close_companion, (companion,)))
        self._companions.clear()
        reply = None if future is None else self._reply(future.get_loop())
        self._put((reply, _resolve, future, _close_marker, (self._replies,)))
        self._replies = None

    async def close(self) -> None:
        """``stop()`` and wait until the thread has ended."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.stop(future)
        await future
        await wait_until_ended(self._thread)

    def borrow(self) -> sqlite3.Connection | None:
        """The thread's connection, lent to the calling thread until ``give_back()``: only while
        the thread is idle (every job it was given has finished) and running, else None. The
        thread does not start another job before ``give_back()``. For the thread that queues
        this thread's jobs (an event loop's): it alone may see ``queued`` stay put meanwhile.
        The connection must have been opened with ``check_same_thread=False``."""
        shared = self._shared
        if not self.running or shared.finished != self.queued:
            return None
        if not shared.lock.acquire(blocking=False):
            return None
        if shared.connection is None:
            shared.lock.release()
        return shared.connection

    def give_back(self) -> None:
        """End the loan ``borrow()`` made."""
        self._shared.lock.release()

    def join(self, timeout: float) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _queue_call(self, work: Callable[..., _T], args: tuple[Any, ...]) -> asyncio.Future[_T]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_T] = loop.create_future()
        self._put((self._reply(loop), _resolve, future, work, args))
        return future

    def _put(self, job: _Job) -> None:
        self.queued += 1
        self._jobs.put(job)

    def _reply(self, loop: asyncio.AbstractEventLoop) -> _Reply:
        """How the worker hands a result to ``loop``."""
        replies = self._replies
        if replies is not None and replies.loop is loop:
            return replies.send
        if loop is self._plain_loop:
            return loop.call_soon_threadsafe
        if replies is not None:
            if not replies.loop.is_closed():
                return loop.call_soon_threadsafe  # a second live loop: the general way
            # Queued after every job that may still use them.
            self._put((None, None, None, _retire_marker, (replies,)))
        self._replies = replies = _LoopReplies.attach(loop)
        if replies is None:
            self._plain_loop = loop
            return loop.call_soon_threadsafe
        return replies.send


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
        """Close every connection after the work queued on it, and end the threads, one after
        the other (the last connection to close checkpoints the WAL: two closing at once could
        each find the other still open and both leave it). A cancelled close still has every
        thread stop, without waiting for them."""
        self._finalizer.detach()
        _open_groups.discard(self)
        for index, thread in enumerate(self.threads):
            try:
                await thread.close()
            except BaseException:
                for later in self.threads[index + 1 :]:
                    later.stop()
                raise

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


async def wait_until_ended(thread: threading.Thread) -> None:
    """Wait, without blocking the loop, for ``thread`` to end: for a thread that has been told
    to stop and has nothing left but to return (or to close a connection)."""
    # Polled: nothing can signal an event after the thread's last line has run, and join()
    # would block the loop.
    while thread.is_alive():  # noqa: ASYNC110
        await asyncio.sleep(_END_POLL_SECONDS)


def _close_abandoned_groups() -> None:
    """At interpreter exit: warn about stores never closed and let their threads close cleanly."""
    groups = list(_open_groups)
    for group in groups:
        group.abandon()
    deadline = time.monotonic() + EXIT_WAIT_SECONDS
    for group in groups:
        group.join(deadline)


atexit.register(_close_abandoned_groups)

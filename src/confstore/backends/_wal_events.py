"""Writes to an SQLite ``-wal`` file, as inotify reports them (Linux; elsewhere: unavailable).

Only a hint that a commit may follow: SQLite writes a transaction's frames to the WAL first and
publishes the commit afterwards in its shared-memory index, which raises no file event. The
commit watcher (``_sqlite_watch``) therefore checks ``PRAGMA data_version`` quickly for a short
while after each event, and otherwise sleeps in ``wait`` without costing any CPU.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import threading
from typing import Final

_IN_MODIFY: Final = 0x00000002
_READ_SIZE: Final = 65536


class WalEvents:
    """An inotify watch on one file, and a pipe that interrupts a ``wait`` from another thread.

    Raises OSError when inotify is unavailable (not Linux, no libc symbol, the file missing,
    the watch limit reached): the caller then checks on a timer instead.
    """

    def __init__(self, path: str) -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            init, add_watch = libc.inotify_init1, libc.inotify_add_watch
        except (AttributeError, OSError) as exc:
            raise OSError(f"inotify is not available: {exc}") from exc
        descriptor = init(os.O_NONBLOCK | os.O_CLOEXEC)
        if descriptor < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")
        if add_watch(descriptor, os.fsencode(path), _IN_MODIFY) < 0:
            error = ctypes.get_errno()
            os.close(descriptor)
            raise OSError(error, f"cannot watch {path}")
        self._inotify = descriptor
        self._wake_reader, self._wake_writer = os.pipe()
        # Guards the descriptors: ``interrupt`` may run on another thread while ``close`` runs.
        self._lock = threading.Lock()
        self._closed = False

    def wait(self, timeout: float) -> bool:
        """Block until the file is written (True), ``timeout`` s pass or ``interrupt`` (False)."""
        readable, _, _ = select.select([self._inotify, self._wake_reader], [], [], timeout)
        if self._wake_reader in readable:
            os.read(self._wake_reader, _READ_SIZE)
        if self._inotify not in readable:
            return False
        with contextlib.suppress(BlockingIOError):
            while os.read(self._inotify, _READ_SIZE):
                pass  # one wake-up for every event queued so far
        return True

    def interrupt(self) -> None:
        """Make a ``wait`` in progress (or the next one) return at once; any thread."""
        with self._lock:
            if not self._closed:
                os.write(self._wake_writer, b"!")

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for descriptor in (self._inotify, self._wake_reader, self._wake_writer):
                os.close(descriptor)

"""When short synchronous SQLite work may run on the event loop's own thread.

A thread hop costs more than a point read or a lone small write by the primary index (each
switch wakes another thread, often on another idle CPU), so the SQLite store runs such work on
the loop's thread when that cannot hold the loop for long, and hands it to its worker threads
otherwise. ``LoopBudget`` is the one place that decides, shared by every kind of such work:

- only on the thread that made the budget (the thread whose loop opened the store); a call from
  another thread or another loop's thread goes to the worker thread, so the connection used on
  the loop is never used by two threads at once;
- not for ``pause`` seconds after a run there took longer than ``budget``: a cold page cache, a
  busy machine or a slow disk makes the next runs go to the thread, so such a stall holds the
  loop once per ``pause`` at most, never run after run.

Usage::

    if budget.allows():
        started = budget.clock()
        try:
            ...  # the work, on the loop's thread
        finally:
            budget.spent(started)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class LoopBudget:
    """Whether work may run on the loop's thread now (see the module)."""

    __slots__ = ("_paused_until", "_thread_id", "budget", "clock", "pause")

    def __init__(
        self, budget: float, pause: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._thread_id = threading.get_ident()
        self._paused_until = 0.0
        self.budget = budget
        self.pause = pause
        self.clock = clock

    def allows(self) -> bool:
        """True on the thread that made this budget, unless a slow run paused it."""
        return threading.get_ident() == self._thread_id and self.clock() >= self._paused_until

    @property
    def paused(self) -> bool:
        """Whether a slow run sends work to the thread now."""
        return self.clock() < self._paused_until

    def spent(self, started: float) -> None:
        """A run that began at ``started`` (a reading of ``clock``) has ended; over budget, the
        next ``pause`` seconds go to the thread."""
        ended = self.clock()
        if ended - started > self.budget:
            self._paused_until = ended + self.pause

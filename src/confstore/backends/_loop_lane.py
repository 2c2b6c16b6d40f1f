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
  loop once per ``pause`` at most, never run after run;
- or, with ``outlier``, for work whose usual cost varies more (a write's fsync): not for
  ``pause`` seconds after runs took longer than ``budget`` on average (a moving average over
  about the last 8), or one took ``outlier`` times as long. One slow run among fast ones (on a
  busy machine a run's elapsed time includes waiting for a CPU, which holds the loop wherever
  the work runs) does not pause it; a disk that stays slow does;
- with ``first_pause``, the first of such pauses is that short, and each that follows the end
  of the previous one within ``pause`` seconds twice as long as the previous, up to ``pause``:
  one stall of a shared disk (other processes' I/O) sends work to the thread only briefly,
  while a disk that stays slow still holds the loop about once per ``pause`` in the end.

Usage (or ``started = budget.start()``, None when not allowed)::

    if budget.allows():
        started = budget.clock()
        try:
            ...  # the work, on the loop's thread
        finally:
            budget.spent(started)
"""

from __future__ import annotations

import asyncio
import selectors
import threading
import time
from collections.abc import Callable


class LoopBudget:
    """Whether work may run on the loop's thread now (see the module)."""

    __slots__ = (
        "_average",
        "_next_pause",
        "_paused_until",
        "_thread_id",
        "budget",
        "clock",
        "first_pause",
        "outlier",
        "pause",
    )

    def __init__(
        self,
        budget: float,
        pause: float,
        *,
        outlier: float | None = None,
        first_pause: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._thread_id = threading.get_ident()
        self._paused_until = 0.0
        self._average = 0.0
        self.budget = budget
        self.pause = pause
        self.outlier = outlier
        self.first_pause = pause if first_pause is None else first_pause
        self._next_pause = self.first_pause
        self.clock = clock

    def allows(self) -> bool:
        """True on the thread that made this budget, unless a slow run paused it."""
        return threading.get_ident() == self._thread_id and self.clock() >= self._paused_until

    def start(self) -> float | None:
        """``allows()`` and, when it does, the clock's reading to pass to ``spent``: one call
        and one reading of the clock for both, on the hot path of writes; else None."""
        if threading.get_ident() != self._thread_id:
            return None
        now = self.clock()
        return now if now >= self._paused_until else None

    @property
    def paused(self) -> bool:
        """Whether a slow run sends work to the thread now."""
        return self.clock() < self._paused_until

    def spent(self, started: float) -> None:
        """A run that began at ``started`` (a reading of ``clock``) has ended; over budget, the
        next ``pause`` seconds (see ``first_pause``) go to the thread."""
        ended = self.clock()
        elapsed = ended - started
        if self.outlier is None:
            over = elapsed > self.budget
        else:
            self._average += (elapsed - self._average) / 8
            over = self._average > self.budget or elapsed > self.outlier * self.budget
        if over:
            if ended - self._paused_until > self.pause:  # the last pause is long over
                self._next_pause = self.first_pause
            self._paused_until = ended + self._next_pause
            self._next_pause = min(2 * self._next_pause, self.pause)
            self._average = 0.0


def waiting_check(loop: asyncio.AbstractEventLoop) -> Callable[[], bool]:
    """A check of whether ``loop`` has I/O ready or a timer due, that runs nothing: for work that
    holds the loop's thread, to tell when it must give the loop a turn.

    It asks the loop's selector for ready descriptors with a timeout of 0 (selectors are
    level-triggered, so that consumes nothing: the loop's next turn sees the same) and looks at
    the loop's earliest timer: asyncio's own selector loops' ``_selector`` and ``_scheduled``.
    A turn of the loop costs several times as much right after an fsync (50-75 us on this
    project's VM, against 10-20 for the check). For a loop without them (uvloop, Windows'
    proactor) the check always answers True.
    """
    selector = getattr(loop, "_selector", None)
    scheduled = getattr(loop, "_scheduled", None)
    if not isinstance(selector, selectors.BaseSelector) or not isinstance(scheduled, list):
        return _always
    select = selector.select
    clock = loop.time

    def waiting() -> bool:
        if scheduled and scheduled[0].when() <= clock():
            return True
        return bool(select(0))

    return waiting


def _always() -> bool:
    return True

"""Group commit: the concurrent ``set_config`` calls of one store share one transaction.

A write that finds no other write of the store in flight is sent at once, alone (a lone writer
never waits for company). Writes that arrive while one is in flight queue; when it ends, the
queue goes to the server as one batch (``_sql.Statements.write_batch``): one statement, one
transaction, one commit, so one WAL flush for all of them instead of one each. Each write keeps
its own outcome: the batch reports per write whether it got a version (a compare-and-set that
does not match gets none and fails alone), and a failure of the whole batch reaches every write
in it. Only one write or batch is in flight at a time (one whose connection dropped stops counting
while the store asks the server whether it was applied); a key appears at most once per batch (a
second write of it waits for the next, so one caller's writes keep their order).
"""

from __future__ import annotations

import asyncio
import copy
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from confstore import ConfigKey

# A batch stops growing at this many writes or this many characters of values (the first write of a
# batch always goes in): the statement stays a size the server handles in one go.
MAX_BATCH_WRITES: Final = 512
MAX_BATCH_VALUE_CHARS: Final = 4 * 1024 * 1024


@dataclass(slots=True, eq=False)
class PendingWrite:
    """One ``set_config`` on its way to the server."""

    key: ConfigKey
    value_json: str
    updated_by: str | None
    comment: str | None
    expected_version: int | None
    request_id: uuid.UUID = field(default_factory=uuid.uuid4)
    future: asyncio.Future[Any] | None = None


# What a write got: the written row (version, created_at, updated_at), None when its condition
# did not hold, or the exception that ends it.
Outcome = Any
# Each is given the turn's end (see ``GroupCommit._turn``), to call once the outcome is unknown.
WriteOne = Callable[[PendingWrite, Callable[[], None]], Awaitable[Outcome]]
WriteMany = Callable[[Sequence[PendingWrite], Callable[[], None]], Awaitable[list[Outcome]]]


class GroupCommit:
    """The write path of one store: ``write()`` sends a write alone or in the next batch."""

    def __init__(self, write_one: WriteOne, write_many: WriteMany) -> None:
        self._write_one = write_one
        self._write_many = write_many
        self._queue: list[PendingWrite] = []
        self._busy = False
        self._sending: set[asyncio.Task[None]] = set()

    async def write(self, pending: PendingWrite) -> Outcome:
        """The row ``pending`` wrote, or None when its condition did not hold; raises its error."""
        if not self._busy:
            self._busy = True
            turn = self._turn()
            try:
                return await self._write_one(pending, turn)
            finally:
                turn()
        future = pending.future = asyncio.get_running_loop().create_future()
        self._queue.append(pending)
        try:
            return await future
        except asyncio.CancelledError:
            # Still queued: nothing was sent, and it never will be. Already sent: the batch
            # goes on for the others, and this write may be applied, like any cancelled write.
            if pending in self._queue:
                self._queue.remove(pending)
            raise

    async def idle(self) -> None:
        """Return once every queued write has its outcome (before the store closes)."""
        while self._sending:
            await asyncio.wait(list(self._sending))

    def _turn(self) -> Callable[[], None]:
        """The end of the write or batch in flight, called when it is done or when its outcome
        turns out unknown (it then waits for the server to answer whether it was applied, which
        may take the store's whole timeout; the writes queued behind it go on meanwhile, and
        fail at once if the server is down). The first call sends the next batch."""
        ended = False

        def end() -> None:
            nonlocal ended
            if ended:
                return
            ended = True
            self._busy = False
            if self._queue:
                self._busy = True
                task = asyncio.get_running_loop().create_task(self._send(self._take()))
                self._sending.add(task)
                task.add_done_callback(self._sending.discard)

        return end

    async def _send(self, batch: list[PendingWrite]) -> None:
        turn = self._turn()
        try:
            if len(batch) == 1:
                outcomes = [await _outcome(self._write_one(batch[0], turn))]
            else:
                outcomes = await self._write_many(batch, turn)
        except Exception as exc:
            outcomes = [_own_copy(exc) for _ in batch]
        except BaseException:  # cancelled: the loop is closing
            for pending in batch:
                _settle(pending, asyncio.CancelledError("the store's writer stopped"))
            raise
        finally:
            turn()
        for pending, outcome in zip(batch, outcomes, strict=True):
            _settle(pending, outcome)

    def _take(self) -> list[PendingWrite]:
        """The next batch: queued writes in order, the first of each key, within the limits."""
        batch: list[PendingWrite] = []
        keys: set[ConfigKey] = set()
        left: list[PendingWrite] = []
        size = 0
        for pending in self._queue:
            grown = size + len(pending.value_json)
            full = len(batch) >= MAX_BATCH_WRITES or (batch and grown > MAX_BATCH_VALUE_CHARS)
            if full or pending.key in keys:
                left.append(pending)
                continue
            keys.add(pending.key)
            batch.append(pending)
            size = grown
        self._queue = left
        return batch


async def _outcome(write: Awaitable[Outcome]) -> Outcome:
    try:
        return await write
    except Exception as exc:
        return exc


def _own_copy(exc: Exception) -> Exception:
    """A copy of a failure shared by a whole batch, caused by it: every caller raises an
    exception of its own (one object raised in many tasks would collect all their tracebacks)."""
    try:
        own = copy.copy(exc)
    except Exception:  # an exception class that cannot be rebuilt from its args
        return exc
    own.__cause__ = exc
    return own


def _settle(pending: PendingWrite, outcome: Outcome) -> None:
    future = pending.future
    if future is None or future.done():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)

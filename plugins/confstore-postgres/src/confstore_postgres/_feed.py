"""The change-feed cursor: which committed transactions a follower has been given.

Rows of ``config_changes`` carry their transaction's id (``xid``, a never-wrapping ``xid8``) and
become visible when it commits, which is not the order of their sequence numbers: a cursor "last
seq seen" would skip a row whose transaction started earlier and committed later. So a cursor is
a set of finished transactions instead:

- ``floor``: every transaction with a lower xid is finished, and all its rows were delivered.
  It follows the reading snapshot's ``xmin`` (the oldest transaction still running anywhere in the
  cluster; nothing can appear below it any more).
- ``done``: transactions at or above the floor that committed and were delivered while an older
  one was still running. Reads skip them. At most ``MAX_DONE``: past that, rows above the floor
  wait until the old transaction ends (so a long transaction elsewhere in the cluster delays the
  feed only after that many of our own commits).
- ``partial``: (xid, seq) of the last row delivered of a transaction only partly delivered (a
  page ended inside it, for example inside a large import).
- ``feed_id``: the feed's identity; a cursor of another database or of a re-created schema is
  expired rather than silently wrong.

Writes to one key get xids in version order (see ``_sql``), so ordering by (xid, seq) keeps every
key's versions in order, and a version is visible only after the versions before it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from confstore import CursorExpiredError, decode_cursor, encode_cursor

CURSOR_PREFIX: Final = "pg1."
MAX_DONE: Final = 256


@dataclass(frozen=True, slots=True)
class FeedCursor:
    feed_id: str | None = None
    floor: int = 0
    done: tuple[int, ...] = ()
    partial: tuple[int, int] | None = field(default=None)

    def encode(self) -> str:
        state: dict[str, Any] = {"i": self.feed_id, "f": self.floor}
        if self.done:
            # Deltas from the floor, then from each other: short numbers, a short cursor.
            deltas, previous = [], self.floor
            for xid in self.done:
                deltas.append(xid - previous)
                previous = xid
            state["d"] = deltas
        if self.partial is not None:
            state["p"] = list(self.partial)
        return encode_cursor(CURSOR_PREFIX, state)

    @classmethod
    def decode(cls, cursor: str | None) -> FeedCursor:
        """The cursor's state; InvalidConfigError for anything this backend did not issue."""
        if cursor is None:
            return cls()
        return decode_cursor(cursor, prefix=CURSOR_PREFIX, backend="postgresql", parse=_parse)

    def check(self, feed_id: str, floor: int, next_xid: int) -> None:
        """Raise CursorExpiredError unless this cursor can be served by the feed as it is now."""
        if self.feed_id is None:
            return
        if self.feed_id != feed_id:
            raise CursorExpiredError(
                "this change-feed cursor belongs to another confstore feed (another database, or "
                "the schema was created again): start from current_cursor()"
            )
        if self.floor < floor:
            raise CursorExpiredError(
                "this change-feed cursor is older than the changes the store still keeps: "
                "start from current_cursor()"
            )
        if self.floor > next_xid:
            raise CursorExpiredError(
                "this change-feed cursor is ahead of the database (restored from a backup?): "
                "start from current_cursor()"
            )


@dataclass(frozen=True, slots=True)
class Page:
    """What one read of the feed delivers, and the cursor after it."""

    rows: list[Sequence[Any]]
    cursor: FeedCursor
    has_more: bool


def next_page(
    cursor: FeedCursor, feed_id: str, xmin: int, rows: Sequence[Sequence[Any]], limit: int
) -> Page:
    """Deliver ``rows`` (visible, undelivered changes in (xid, seq) order; up to limit + 1; each
    starting with xid, seq) read with a snapshot whose xmin is ``xmin``."""
    beyond = {xid for xid in cursor.done if xid >= xmin}
    if cursor.partial is not None:
        beyond.add(cursor.partial[0])
    delivered: list[Sequence[Any]] = []
    cut = False
    for row in rows:
        if len(delivered) == limit:
            cut = True
            break
        xid = row[0]
        if xid >= xmin and xid not in beyond:
            if len(beyond) >= MAX_DONE:
                break  # too many done above the floor: wait for the oldest transaction to end
            beyond.add(xid)
        delivered.append(row)
    finished = {row[0] for row in delivered} | set(cursor.done)
    if cursor.partial is not None:
        finished.add(cursor.partial[0])
    if not cut:
        floor = max(cursor.floor, xmin)
        done = tuple(sorted(xid for xid in finished if xid >= floor))
        return Page(delivered, FeedCursor(feed_id, floor, done), has_more=False)
    last, following = delivered[-1], rows[len(delivered)]
    partial = (last[0], last[1]) if following[0] == last[0] else None
    if partial is not None:
        finished.discard(partial[0])
    done = tuple(sorted(xid for xid in finished if xid >= cursor.floor))
    return Page(delivered, FeedCursor(feed_id, cursor.floor, done, partial), has_more=True)


def present(feed_id: str, xmin: int, finished_above: Sequence[int]) -> FeedCursor:
    """The cursor at the feed's present end: below xmin, and the finished xids above it."""
    return FeedCursor(feed_id, xmin, tuple(sorted(finished_above))[:MAX_DONE])


def _parse(state: Any) -> FeedCursor:
    if not isinstance(state, dict):
        raise ValueError("not an object")
    feed_id = state["i"]
    floor = state["f"]
    if not isinstance(feed_id, str) or not _is_count(floor):
        raise ValueError("bad feed id or floor")
    done: list[int] = []
    previous = floor
    for delta in state.get("d", []):
        if not _is_count(delta) or (done and delta == 0):
            raise ValueError("bad done list")
        previous += delta
        done.append(previous)
    if len(done) > MAX_DONE:
        raise ValueError("done list too long")
    partial = state.get("p")
    if partial is not None:
        if not (isinstance(partial, list) and len(partial) == 2 and all(map(_is_count, partial))):
            raise ValueError("bad partial position")
        partial = (partial[0], partial[1])
    return FeedCursor(feed_id, floor, tuple(done), partial)


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63

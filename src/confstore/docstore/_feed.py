"""The change feed of the document protocol: a windowed cursor over ``scan_feed``.

Records carry ``written_micros`` (the writer's clock, increasing per key). A cursor holds a
watermark W, the newest ``written_micros`` reported, and a short token for every record reported
with ``written_micros >= W - window``. A poll scans the records from ``W - window`` on, drops
those already reported, holds back version records whose head has not reached them yet (their
writer is between its steps, or died there) for at most one window, and reports the rest oldest
first. So a write that becomes visible late, by less than the window, is still reported, once.

Why the window is 30 s by default (``DEFAULT_CHANGE_WINDOW``): it must exceed how long a write
can take between taking its timestamp and becoming visible (a request timeout of 10 s by default,
plus retries) and the clock skew between writing hosts; what a larger window costs is small at
configuration write rates: every poll re-scans the last window, and the cursor carries about 45
bytes per write of the last window. Limits: a write that takes longer than the window to become
visible, or comes from a host whose clock lags the newest reported write by more than the window,
can be missed; a version whose writer died before publishing it is reported after one window.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import Any

from .._models import ChangeBatch, ConfigKey, decode_cursor, encode_cursor, epoch_micros, utc_now
from ._primitives import DocumentStore, Head, Record, RecordKind

DEFAULT_CHANGE_WINDOW = 30.0
_CURSOR_PREFIX = "doc1."


@dataclass(frozen=True, slots=True)
class FeedPosition:
    """Where a reader stands: the watermark (None: nothing reported yet, start at the beginning)
    and the (written_micros, token) pairs of the records reported within the window below it."""

    watermark: int | None
    seen: frozenset[tuple[int, str]]

    def encode(self) -> str:
        return encode_cursor(_CURSOR_PREFIX, {"w": self.watermark, "s": sorted(self.seen)})

    @classmethod
    def decode(cls, cursor: str | None, backend: str) -> FeedPosition:
        if cursor is None:
            return cls(None, frozenset())
        return decode_cursor(cursor, prefix=_CURSOR_PREFIX, backend=backend, parse=cls._parse)

    @classmethod
    def _parse(cls, state: Any) -> FeedPosition:
        watermark = state["w"]
        if watermark is not None and (
            isinstance(watermark, bool) or not isinstance(watermark, int)
        ):
            raise ValueError("bad watermark")
        seen = frozenset((_int(micros), str(token)) for micros, token in state["s"])
        return cls(watermark, seen)


class ChangeFeed:
    """``current_cursor`` and ``changes_since`` of a DocumentConfigStore."""

    def __init__(self, documents: DocumentStore, window: float, backend: str) -> None:
        self.documents = documents
        self.window_micros = int(window * 1_000_000)
        self.backend = backend

    async def current_cursor(self) -> str:
        now = now_micros()
        floor = now - self.window_micros
        seen = frozenset([_seen(record) async for record in self.documents.scan_feed(floor)])
        return FeedPosition(now, seen).encode()

    async def changes_since(self, cursor: str | None, limit: int) -> ChangeBatch:
        position = FeedPosition.decode(cursor, self.backend)
        floor = None if position.watermark is None else position.watermark - self.window_micros
        fresh = [
            record
            async for record in self.documents.scan_feed(floor)
            if _seen(record) not in position.seen
        ]
        ready, held = await self._split_committed(fresh)
        ready.sort(key=lambda record: (record.written_micros, record.key, record.version))
        page = ready[:limit]
        watermark = position.watermark
        if page:
            newest = page[-1].written_micros
            watermark = newest if watermark is None else max(watermark, newest)
        if held and watermark is not None:
            # Keep the oldest held-back record inside the next poll's window.
            oldest_held = min(record.written_micros for record in held)
            watermark = min(watermark, oldest_held + self.window_micros - 1)
        seen = position.seen | {_seen(record) for record in page}
        if watermark is not None:
            floor = watermark - self.window_micros
            seen = frozenset(item for item in seen if item[0] >= floor)
        return ChangeBatch(
            tuple(record.change() for record in page),
            FeedPosition(watermark, seen).encode(),
            has_more=len(ready) > limit,
        )

    async def _split_committed(self, records: list[Record]) -> tuple[list[Record], list[Record]]:
        """The records a head vouches for (or older than a window, or purge markers), and the rest."""
        keys = sorted({record.key for record in records if record.kind is RecordKind.VERSION})
        found = await self.documents.get_heads(keys) if keys else []
        heads: dict[ConfigKey, Head | None] = dict(zip(keys, found, strict=True))
        expiry = now_micros() - self.window_micros
        ready: list[Record] = []
        held: list[Record] = []
        for record in records:
            head = heads.get(record.key)
            vouched = record.kind is RecordKind.PURGE or (
                head is not None
                and (
                    head.generation > record.generation
                    or (head.generation == record.generation and head.version >= record.version)
                )
            )
            (ready if vouched or record.written_micros < expiry else held).append(record)
        return ready, held


def now_micros() -> int:
    return epoch_micros(utc_now())


def _seen(record: Record) -> tuple[int, str]:
    """A record's place in a cursor: its micros and a short hash of its identity and writer."""
    key = record.key
    identity = "|".join(
        (
            record.kind.value,
            key.tenant_id,
            key.scope.value,
            key.service,
            key.config_key,
            str(record.generation),
            str(record.version),
            record.write_id,
        )
    )
    digest = hashlib.blake2b(identity.encode(), digest_size=9).digest()
    return record.written_micros, base64.urlsafe_b64encode(digest).decode("ascii")


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"not an integer: {value!r}")
    return value

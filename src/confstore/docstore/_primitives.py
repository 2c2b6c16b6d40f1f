"""The primitives a document store lends the document protocol: ``DocumentStore`` and its records.

A ``DocumentStore`` keeps two kinds of documents for each config key:

- one **head** (``Head``): the key's latest version (number, entry, deleted flag), its
  ``generation`` (bumped by each purge), the ``write_id`` of the write that made it and a
  compare-and-set ``token``;
- **records** (``Record``): one per stored version, identified by (key, generation, version), and
  one purge marker per purge, identified by (key, generation), which the change feed reports.

Each primitive states what the backend must guarantee; ``DocumentConfigStore`` builds the whole
confstore contract (unique versions across hosts, repair of dead writers, purge, change feed)
from them and nothing else.
"""

from __future__ import annotations

import abc
import asyncio
import enum
from collections.abc import AsyncIterator, Awaitable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .._errors import UnsupportedOperationError
from .._models import ChangeKind, ConfigChange, ConfigEntry, ConfigKey, ConfigScope
from .._store import StoreCapabilities

PARALLEL_REQUESTS = 32
T = TypeVar("T")


class WriteOutcome(enum.Enum):
    """What a conditional write did.

    APPLIED: it is stored. CONFLICT: it was refused because its condition failed (the record
    exists; the head is not the expected one), so nothing was written. UNKNOWN: it may or may not
    have been applied (a timeout, a dropped connection, a 5xx on a write); the protocol reads back.
    """

    APPLIED = "applied"
    CONFLICT = "conflict"
    UNKNOWN = "unknown"


class RecordKind(enum.StrEnum):
    VERSION = "version"
    PURGE = "purge"


@dataclass(frozen=True, slots=True)
class Record:
    """A version record or a purge marker.

    ``written_micros`` is the writer's clock in microseconds since the epoch, forced above the
    previous version's, so it grows with the versions of a key; the change feed orders by it.
    ``write_id`` names the write that created the record (a read-back compares it). ``entry`` is
    the version's ConfigEntry; a purge marker has none, and ``scan_feed`` may leave it out.
    For a purge marker, ``version`` is the last version the purged generation had.
    """

    kind: RecordKind
    key: ConfigKey
    generation: int
    version: int
    deleted: bool
    written_micros: int
    write_id: str
    entry: ConfigEntry | None = None

    def change(self) -> ConfigChange:
        """The change-feed item this record reports."""
        if self.kind is RecordKind.PURGE:
            return ConfigChange(self.key, ChangeKind.PURGE, self.version)
        kind = ChangeKind.DELETE if self.deleted else ChangeKind.SET
        return ConfigChange(self.key, kind, self.version)


@dataclass(frozen=True, slots=True)
class Head:
    """A key's head document, or (``exists=False``) the absence of one.

    ``version`` 0 means nothing is committed in this generation (a purged key). ``purging`` marks
    a purge in progress: the key reads as absent and whoever meets the mark finishes the purge.
    ``entry`` is the entry of ``version`` (None for version 0, and when a scan asked for
    summaries). ``token`` is the backend's compare-and-set token (a revision, a sequence number);
    the protocol only hands it back to ``put_head``.
    """

    key: ConfigKey
    generation: int = 0
    version: int = 0
    deleted: bool = True
    purging: bool = False
    written_micros: int = 0
    write_id: str = ""
    entry: ConfigEntry | None = None
    exists: bool = True
    token: Any = field(default=None, compare=False)

    @classmethod
    def absent(cls, key: ConfigKey) -> Head:
        return cls(key, exists=False)

    @classmethod
    def showing(cls, record: Record) -> Head:
        """The head that makes ``record`` (a version record) the key's latest version."""
        return cls(
            record.key,
            generation=record.generation,
            version=record.version,
            deleted=record.deleted,
            written_micros=record.written_micros,
            write_id=record.write_id,
            entry=record.entry,
        )

    @property
    def live(self) -> bool:
        """The key has a latest version that is not a tombstone, and no purge is under way."""
        return self.exists and self.version > 0 and not self.deleted and not self.purging

    @property
    def committed(self) -> int:
        """How many versions this head vouches for: 0 while purging, else ``version``."""
        return 0 if self.purging or not self.exists else self.version

    def same_state(self, other: Head) -> bool:
        """Whether ``other`` is this very head (nobody wrote the head in between)."""
        return (self.exists, self.generation, self.version, self.purging, self.write_id) == (
            other.exists,
            other.generation,
            other.version,
            other.purging,
            other.write_id,
        )


@dataclass(frozen=True, slots=True)
class HeadQuery:
    """The heads a scan asks for: filters (None: any) and whether their entries are needed
    (``values=False``: summaries for counting; a backend may still return entries)."""

    tenant_id: str | None = None
    scope: ConfigScope | None = None
    service: str | None = None
    values: bool = True

    def filters(self) -> list[tuple[str, str]]:
        """(field, value) of each filter that is set, named as in ``document_fields``."""
        wanted = (("tenant_id", self.tenant_id), ("scope", self.scope), ("service", self.service))
        return [(name, str(value)) for name, value in wanted if value is not None]

    def matches(self, key: ConfigKey) -> bool:
        return (
            self.tenant_id in (None, key.tenant_id)
            and self.scope in (None, key.scope)
            and self.service in (None, key.service)
        )


class DocumentStore(abc.ABC):
    """The storage primitives of a store with conditional writes, for ``DocumentConfigStore``.

    Guarantees every implementation must keep (the protocol's correctness rests on them):

    - **Read your writes.** ``get_head`` and ``get_versions`` see every write that was applied
      before they were called, from any handle or host (Elasticsearch: real-time GET; Vespa: GET).
      Scans may lag (an Elasticsearch search sees the last refresh), but must see a write once it
      is acknowledged if the backend offers a way (refresh before searching).
    - **Atomic create-if-absent.** ``create_record`` stores a record only if no record with its
      identity exists; of concurrent creators on any hosts exactly one gets APPLIED.
    - **Compare-and-set.** ``put_head`` writes a head only if the stored head is still the one
      ``expected`` was read as (or, with ``expected=None``, only if there is none).
    - **Honest outcomes.** CONFLICT only when the condition failed; anything that may have been
      applied is UNKNOWN. Conditional writes must never be re-sent by the transport on its own
      (aiohttp re-sends a PUT or DELETE on a dropped pooled connection: send them as POST).
      Definite failures raise BackendUnavailableError, BackendTimeoutError or BackendError.

    Identifiers never contain ``/``, so ``tenant/scope/service/key`` joins them unambiguously.
    Only confstore exceptions may leave a primitive.
    """

    #: A sentence added to errors when the backend breaks a guarantee (e.g. a minimum version).
    requirement: str = ""

    @property
    def capabilities(self) -> StoreCapabilities:
        """What the store offers beyond the contract (persistent, shared by several handles;
        retention when it implements ``delete_versions``)."""
        retention = type(self).delete_versions is not DocumentStore.delete_versions
        return StoreCapabilities(persistent=True, shared=True, retention=retention)

    @abc.abstractmethod
    async def initialize(self) -> None:
        """Create indices or tables, or check them (and the server's version); idempotent."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections; idempotent."""

    @abc.abstractmethod
    async def health_check(self) -> bool:
        """True when the backend answers; never raises; bounded by a timeout."""

    @abc.abstractmethod
    async def get_head(self, key: ConfigKey) -> Head | None:
        """The key's head with its compare-and-set token, or None when it has none."""

    async def get_heads(self, keys: Sequence[ConfigKey]) -> list[Head | None]:
        """The heads of ``keys``, in order (None where there is none). A backend with a
        multi-get overrides this; the default asks ``get_head`` in parallel."""
        return await gather_bounded(self.get_head(key) for key in keys)

    @abc.abstractmethod
    async def put_head(self, head: Head, expected: Head | None) -> WriteOutcome:
        """Store ``head`` only if the stored head is still ``expected`` (its ``token``), or, with
        ``expected=None``, only if the key has no head. CONFLICT when that does not hold."""

    @abc.abstractmethod
    async def create_record(self, record: Record) -> WriteOutcome:
        """Store ``record`` only if no record with its identity exists (version records:
        (key, generation, version); purge markers: (key, generation)). CONFLICT when one does."""

    async def create_records(self, records: Sequence[Record]) -> list[WriteOutcome]:
        """``create_record`` for many (a restore), outcomes in order. A backend with a bulk API
        overrides this; the default creates them in parallel."""
        return await gather_bounded(self.create_record(record) for record in records)

    @abc.abstractmethod
    async def get_versions(
        self, key: ConfigKey, generation: int, versions: Sequence[int]
    ) -> list[Record | None]:
        """The version records (with entries) of ``key`` in ``generation``, in the order of
        ``versions``; None for those that do not exist. Read-your-writes, like ``get_head``."""

    @abc.abstractmethod
    def scan_versions(self, key: ConfigKey, generation: int) -> AsyncIterator[Record]:
        """Every version record (with entry) of ``key`` in ``generation``, in any order."""

    @abc.abstractmethod
    def scan_heads(self, query: HeadQuery) -> AsyncIterator[Head]:
        """Every head ``query`` matches, in any order (tokens are not needed here)."""

    @abc.abstractmethod
    def scan_feed(self, since_micros: int | None) -> AsyncIterator[Record]:
        """Every record (versions and purge markers) whose ``written_micros`` is at least
        ``since_micros`` (None: all), in any order; entries may be left out."""

    async def delete_versions(
        self, key: ConfigKey, generation: int, versions: Sequence[int]
    ) -> None:
        """Delete these version records of ``key`` in ``generation`` (retention; never the
        head's version). Idempotent. Implementing it gives the store ``capabilities.retention``;
        the default raises UnsupportedOperationError."""
        raise UnsupportedOperationError(
            f"{type(self).__name__} cannot delete single versions (no retention)"
        )

    @abc.abstractmethod
    async def delete_generations(self, key: ConfigKey, up_to: int) -> None:
        """Delete the version records of ``key`` in generations ``up_to`` and below (purge
        markers stay: the change feed reports them). Idempotent."""


async def gather_bounded(
    awaitables: Iterable[Awaitable[T]], limit: int = PARALLEL_REQUESTS
) -> list[T]:
    """Await all, at most ``limit`` at a time; results in order. If one fails, the others are
    cancelled and its exception is raised."""
    semaphore = asyncio.Semaphore(limit)

    async def run(awaitable: Awaitable[T]) -> T:
        async with semaphore:
            return await awaitable

    tasks = [asyncio.ensure_future(run(awaitable)) for awaitable in awaitables]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        # One failed (or we were cancelled): stop the others rather than leave them running.
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise

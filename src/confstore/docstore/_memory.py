"""MemoryDocumentStore: the reference DocumentStore, every primitive in process memory.

It implements the primitives and nothing else (no multi-get, no bulk create), so that running
the conformance suite on ``DocumentConfigStore(MemoryDocumentStore(...))`` tests the protocol
itself. Documents are kept as JSON text, as a real store keeps them, so every read returns a
copy of its own; every primitive yields to the event loop first, as network I/O would, so that
concurrent writers interleave between the protocol's steps.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .._models import ConfigEntry, ConfigKey
from .._store import StoreCapabilities
from ._primitives import DocumentStore, Head, HeadQuery, Record, RecordKind, WriteOutcome

RecordId = tuple[RecordKind, ConfigKey, int, int]


@dataclass
class _Documents:
    """One storage area: heads as (revision, JSON), records as JSON, and a revision counter."""

    heads: dict[ConfigKey, tuple[int, str]] = field(default_factory=dict)
    records: dict[RecordId, str] = field(default_factory=dict)
    revisions: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    lock: threading.Lock = field(default_factory=threading.Lock)


class MemoryDocumentStore(DocumentStore):
    """Documents in memory. Handles made with the same ``name`` share them for the life of the
    process (as hosts share a server); ``name=None`` makes a private area."""

    _areas: ClassVar[dict[str, _Documents]] = {}
    _areas_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, name: str | None = None) -> None:
        self.name = name
        if name is None:
            self._documents = _Documents()
        else:
            with self._areas_lock:
                self._documents = self._areas.setdefault(name, _Documents())

    @property
    def capabilities(self) -> StoreCapabilities:
        named = self.name is not None
        return StoreCapabilities(persistent=named, shared=named, retention=True)

    async def initialize(self) -> None:
        await asyncio.sleep(0)

    async def close(self) -> None:
        await asyncio.sleep(0)

    async def health_check(self) -> bool:
        await asyncio.sleep(0)
        return True

    async def get_head(self, key: ConfigKey) -> Head | None:
        await asyncio.sleep(0)
        stored = self._documents.heads.get(key)
        return None if stored is None else _head_from(key, *stored)

    async def put_head(self, head: Head, expected: Head | None) -> WriteOutcome:
        await asyncio.sleep(0)
        documents = self._documents
        with documents.lock:
            stored = documents.heads.get(head.key)
            if (stored is None) != (expected is None) or (
                stored is not None and expected is not None and stored[0] != expected.token
            ):
                return WriteOutcome.CONFLICT
            documents.heads[head.key] = (next(documents.revisions), _head_json(head))
        return WriteOutcome.APPLIED

    async def create_record(self, record: Record) -> WriteOutcome:
        await asyncio.sleep(0)
        documents = self._documents
        with documents.lock:
            identity = _record_id(record)
            if identity in documents.records:
                return WriteOutcome.CONFLICT
            documents.records[identity] = _record_json(record)
        return WriteOutcome.APPLIED

    async def get_versions(
        self, key: ConfigKey, generation: int, versions: Sequence[int]
    ) -> list[Record | None]:
        await asyncio.sleep(0)
        records = self._documents.records
        found = [records.get((RecordKind.VERSION, key, generation, number)) for number in versions]
        return [None if text is None else _record_from(key, text) for text in found]

    async def scan_versions(self, key: ConfigKey, generation: int) -> AsyncIterator[Record]:
        await asyncio.sleep(0)
        for (kind, owner, record_generation, _), text in list(self._documents.records.items()):
            if (kind, owner, record_generation) == (RecordKind.VERSION, key, generation):
                yield _record_from(owner, text)

    async def scan_heads(self, query: HeadQuery) -> AsyncIterator[Head]:
        await asyncio.sleep(0)
        for key, (revision, text) in list(self._documents.heads.items()):
            if query.matches(key):
                yield _head_from(key, revision, text)

    async def scan_feed(self, since_micros: int | None) -> AsyncIterator[Record]:
        await asyncio.sleep(0)
        for (_, key, _, _), text in list(self._documents.records.items()):
            record = _record_from(key, text)
            if since_micros is None or record.written_micros >= since_micros:
                yield record

    async def delete_versions(
        self, key: ConfigKey, generation: int, versions: Sequence[int]
    ) -> None:
        await asyncio.sleep(0)
        documents = self._documents
        with documents.lock:
            for version in versions:
                documents.records.pop((RecordKind.VERSION, key, generation, version), None)

    async def delete_generations(self, key: ConfigKey, up_to: int) -> None:
        await asyncio.sleep(0)
        documents = self._documents
        with documents.lock:
            for identity in list(documents.records):
                kind, owner, generation, _ = identity
                if (kind, owner) == (RecordKind.VERSION, key) and generation <= up_to:
                    del documents.records[identity]


def _record_id(record: Record) -> RecordId:
    version = record.version if record.kind is RecordKind.VERSION else 0
    return record.kind, record.key, record.generation, version


def _head_json(head: Head) -> str:
    return json.dumps(
        {
            "generation": head.generation,
            "version": head.version,
            "deleted": head.deleted,
            "purging": head.purging,
            "written_micros": head.written_micros,
            "write_id": head.write_id,
            "entry": None if head.entry is None else head.entry.to_dict(),
        }
    )


def _head_from(key: ConfigKey, revision: int, text: str) -> Head:
    fields: dict[str, Any] = json.loads(text)
    entry = fields["entry"]
    return Head(
        key,
        generation=fields["generation"],
        version=fields["version"],
        deleted=fields["deleted"],
        purging=fields["purging"],
        written_micros=fields["written_micros"],
        write_id=fields["write_id"],
        entry=None if entry is None else ConfigEntry.from_dict(entry),
        token=revision,
    )


def _record_json(record: Record) -> str:
    return json.dumps(
        {
            "kind": record.kind.value,
            "generation": record.generation,
            "version": record.version,
            "deleted": record.deleted,
            "written_micros": record.written_micros,
            "write_id": record.write_id,
            "entry": None if record.entry is None else record.entry.to_dict(),
        }
    )


def _record_from(key: ConfigKey, text: str) -> Record:
    fields: dict[str, Any] = json.loads(text)
    entry = fields["entry"]
    return Record(
        RecordKind(fields["kind"]),
        key,
        fields["generation"],
        fields["version"],
        fields["deleted"],
        fields["written_micros"],
        fields["write_id"],
        None if entry is None else ConfigEntry.from_dict(entry),
    )

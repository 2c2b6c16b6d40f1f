"""Document shapes and ids of the Elasticsearch store (no I/O here).

Two indices, each with the strict mapping of ``mappings/{heads,versions}.json``:

- ``{prefix}-heads``: one document per key, id ``tenant/scope/service/key``, holding the head of
  confstore's document protocol (latest version, its value, generation, purge mark, write_id),
  so a latest read is one real-time GET;
- ``{prefix}-versions``: version records, id ``tenant/scope/service/key/GENERATION/VERSION``,
  created only with ``_create``, and purge markers, id ``tenant/scope/service/key/GENERATION/purge``.

Identifiers never contain ``/``, so the ids are unambiguous. Timestamps are ISO strings with
microseconds plus epoch microseconds (``long``), as ES dates keep only milliseconds; values are a
disabled object, so large values never reach a keyword field.
"""

from __future__ import annotations

import json
from datetime import datetime
from importlib import resources
from typing import Any
from urllib.parse import quote

from confstore import BackendError, ConfigEntry, ConfigKey, epoch_micros
from confstore.docstore import (
    Head,
    Record,
    RecordKind,
    document_fields,
    head_from_fields,
    key_from_fields,
    record_from_fields,
)

HEADS = "heads"
VERSIONS = "versions"
_ENTRY_FIELDS = ("value", "created_at", "updated_at", "updated_by", "comment")


def load_mapping(kind: str) -> dict[str, Any]:
    """The index body (settings and strict mappings) shipped with the package."""
    text = (
        resources.files("confstore_elasticsearch").joinpath("mappings", f"{kind}.json").read_text()
    )
    body: dict[str, Any] = json.loads(text)
    return body


def path_id(doc_id: str) -> str:
    """A document id as one percent-encoded path segment (``/`` becomes ``%2F``)."""
    return quote(doc_id, safe="")


def key_id(key: ConfigKey) -> str:
    return f"{key.tenant_id}/{key.scope.value}/{key.service}/{key.config_key}"


def version_id(key: ConfigKey, generation: int, version: int) -> str:
    return f"{key_id(key)}/{generation}/{version}"


def record_id(record: Record) -> str:
    if record.kind is RecordKind.PURGE:
        return f"{key_id(record.key)}/{record.generation}/purge"
    return version_id(record.key, record.generation, record.version)


def head_source(head: Head) -> dict[str, Any]:
    return {**document_fields(head), "key_id": key_id(head.key), **_entry_source(head.entry)}


def record_source(record: Record) -> dict[str, Any]:
    return {
        **document_fields(record),
        "key_id": key_id(record.key),
        "doc_id": record_id(record),
        **_entry_source(record.entry),
    }


def head_from(source: dict[str, Any], token: tuple[int, int] | None = None) -> Head:
    return head_from_fields(source, entry=_entry(source), token=token)


def record_from(source: dict[str, Any]) -> Record:
    return record_from_fields(source, entry=_entry(source))


def _entry_source(entry: ConfigEntry | None) -> dict[str, Any]:
    if entry is None:
        return {}
    return {
        "value": entry.config_value,
        "created_at": entry.created_at.isoformat(timespec="microseconds"),
        "updated_at": entry.updated_at.isoformat(timespec="microseconds"),
        "created_micros": epoch_micros(entry.created_at),
        "updated_micros": epoch_micros(entry.updated_at),
        "updated_by": entry.updated_by,
        "comment": entry.comment,
    }


def _entry(source: dict[str, Any]) -> ConfigEntry | None:
    """The entry a head or version document holds; None for summaries and empty heads."""
    if not all(name in source for name in _ENTRY_FIELDS):
        return None
    key = key_from_fields(source)
    try:
        return ConfigEntry(
            tenant_id=key.tenant_id,
            scope=key.scope,
            service=key.service,
            config_key=key.config_key,
            config_value=source["value"] or {},
            version=int(source["version"]),
            created_at=datetime.fromisoformat(source["created_at"]),
            updated_at=datetime.fromisoformat(source["updated_at"]),
            updated_by=source["updated_by"],
            comment=source["comment"],
            deleted=bool(source["deleted"]),
        )
    except (TypeError, ValueError) as exc:
        raise BackendError(f"malformed document of {key} in Elasticsearch: {exc!r}") from exc
